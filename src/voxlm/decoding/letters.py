"""Letters-first decoding: the character head writes, a word list keeps it to words, the LLM
rescores.

A model whose CTC head spells characters (``ModelConfig.ctc_units``) can be decoded the other
way round from ``voxlm.decoding.search``: a CTC prefix beam search over the head's characters
(Hannun et al., 2014, "First-Pass Large Vocabulary Continuous Speech Recognition using
Bi-Directional Recurrent DNNs") proposes the transcript, every word must be in the lexicon,
and each finished word adds ``word_prior_weight * log p(word) + word_bonus``, p a Zipf prior
over the lexicon's order (most frequent word first: p of rank r proportional to 1 / r). The
LLM then scores each hypothesis of the final beam teacher-forced, given the audio, and the
answer is the best beam score + ``letters_llm_weight * log p_LLM``. Where the LLM writing
trusts its own prior over letters it cannot read, this keeps to what the head hears
(BENCHMARKS.md, "Letters first"). Each token's probability (confidence) is the LLM's own.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import fields
from typing import TYPE_CHECKING

import numpy as np
import torch

from voxlm.decoding.search import Decoded
from voxlm.precision import widen
from voxlm.results import STOP_EOS, STOP_MAX_TOKENS
from voxlm.spelling import ALPHABET, SPACE, word_seconds
from voxlm.text import piece_word_index

if TYPE_CHECKING:
    from voxlm.decoding.options import DecodingOptions
    from voxlm.lexicon import Lexicon
    from voxlm.llm import Prompt
    from voxlm.model import AudioFeatures, VoxLM

BLANK = len(ALPHABET)
PRUNE = math.log(1e-4)  # a character less likely than this in a frame is not tried there


def _add(a: float, b: float) -> float:
    """log(exp(a) + exp(b))."""
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


def word_log_prior(lexicon: Lexicon) -> dict[str, float]:
    """Each listed word's Zipf log-probability from its rank in the list."""
    norm = math.log(sum(1.0 / r for r in range(1, len(lexicon) + 1)))
    return {word: -math.log(rank + 1) - norm for word, rank in lexicon.ranks.items()}


def lexicon_beam(
    log_probs: torch.Tensor,
    lexicon: Lexicon,
    prior: dict[str, float],
    weight: float,
    bonus: float,
    beam: int,
) -> list[tuple[str, float]]:
    """A character head's log-probabilities [T, len(ALPHABET) + 1] -> the final beam as
    (text, score), best first; every word of every text listed. ``prior``: word_log_prior."""

    def word_score(word: str) -> float:
        return weight * prior[word] + bonus

    # prefix -> [log p ending in blank, log p ending in a character, its words' score]
    beams: dict[str, list[float]] = {"": [0.0, -math.inf, 0.0]}
    for frame in log_probs.tolist():
        chars = [c for c in range(BLANK) if frame[c] > PRUNE]
        grown: dict[str, list[float]] = defaultdict(lambda: [-math.inf, -math.inf, 0.0])
        for prefix, (p_blank, p_char, words) in beams.items():
            total = _add(p_blank, p_char)
            stay = grown[prefix]  # a blank, or the last character held
            stay[0] = _add(stay[0], total + frame[BLANK])
            if prefix:
                stay[1] = _add(stay[1], p_char + frame[ALPHABET.index(prefix[-1])])
            stay[2] = words
            partial = prefix.rsplit(" ", 1)[-1]
            for c in chars:
                if c == SPACE:  # a word ends: it must be listed
                    if not partial or partial not in lexicon:
                        continue
                    score = words + word_score(partial)
                elif lexicon.is_prefix(partial + ALPHABET[c]):
                    score = words
                else:
                    continue
                # the same character twice needs a blank between: only p_blank extends it
                held = prefix and prefix[-1] == ALPHABET[c]
                entry = grown[prefix + ALPHABET[c]]
                entry[1] = _add(entry[1], (p_blank if held else total) + frame[c])
                entry[2] = score
        best = sorted(grown.items(), key=lambda kv: _add(kv[1][0], kv[1][1]) + kv[1][2])
        beams = dict(best[-beam:])

    ended: dict[str, float] = {}  # "the cat" and "the cat " are one transcript: the best
    for prefix, (p_blank, p_char, words) in beams.items():
        last = prefix.rsplit(" ", 1)[-1]
        if last and last not in lexicon:
            continue
        score = _add(p_blank, p_char) + words + (word_score(last) if last else 0.0)
        text = prefix.strip()
        ended[text] = max(score, ended.get(text, -math.inf))
    return sorted(ended.items(), key=lambda h: -h[1]) or [("", 0.0)]


@torch.no_grad()
def token_log_probs(
    model: VoxLM, audio: AudioFeatures, row: int, prompt: Prompt, texts: list[str]
) -> tuple[list[list[int]], list[torch.Tensor]]:
    """Each hypothesis's token ids (no EOS), and log p_LLM of each of its tokens and then of its
    EOS, given row ``row`` of ``audio``: the teacher-forced pass of training, one row per text."""
    with_eos = model.tokenize(texts)
    seq = model.assemble(_rows(audio, [row] * len(texts)), [prompt] * len(texts), with_eos)
    logits = model.llm(
        inputs_embeds=seq.embeds, attention_mask=seq.attention_mask, position_ids=seq.position_ids
    ).logits[:, :-1]
    labels = seq.labels[:, 1:]
    picked = widen(logits).log_softmax(-1).gather(-1, labels.clamp(min=0)[..., None])[..., 0]
    log_probs = [p[label != -100].cpu() for p, label in zip(picked, labels, strict=True)]
    return [t[:-1] for t in with_eos], log_probs


def _rows(audio: AudioFeatures, index: list[int]) -> AudioFeatures:
    """The features of the given rows (repeats allowed)."""
    picked = {
        f.name: None if getattr(audio, f.name) is None else getattr(audio, f.name)[index]
        for f in fields(audio)
    }
    return type(audio)(**picked)


class LetterSearch:
    """Letters-first decoding of one batch, with ``BeamSearch``'s ``run`` and ``prefix``."""

    def __init__(
        self, model: VoxLM, audio: AudioFeatures, prompts: list[Prompt], options: DecodingOptions
    ) -> None:
        if audio.ctc_log_probs is None or model.config.ctc_units != "characters":
            raise ValueError(
                "letters_beam needs a model with a character CTC head (model.ctc_units: characters)"
            )
        self.model, self.audio, self.prompts, self.options = model, audio, prompts, options
        self.prior = word_log_prior(options.lexicon)

    def run(self, max_new_tokens: list[int]) -> list[Decoded]:
        lengths = self.audio.mask.sum(1).tolist()
        return [
            self._decode(i, widen(self.audio.ctc_log_probs[i, :n]).cpu(), budget)
            for i, (n, budget) in enumerate(zip(lengths, max_new_tokens, strict=True))
        ]

    def prefix(self) -> None:
        """No KV cache is kept (the words are timed by their letters, ``Decoded.spans``)."""
        return None

    def _decode(self, i: int, log_probs: torch.Tensor, budget: int) -> Decoded:
        o = self.options
        nbest = lexicon_beam(
            log_probs, o.lexicon, self.prior, o.word_prior_weight, o.word_bonus, o.letters_beam
        )
        texts = [text for text, _ in nbest]
        ids, llm = token_log_probs(self.model, self.audio, i, self.prompts[i], texts)
        scores = [
            s + o.letters_llm_weight * float(lp.sum())
            for (_, s), lp in zip(nbest, llm, strict=True)
        ]
        best = max(range(len(nbest)), key=scores.__getitem__)
        tokens, probs = ids[best], llm[best][:-1].exp().tolist()  # the EOS's is not a token's
        stop = STOP_EOS if len(tokens) <= budget else STOP_MAX_TOKENS
        alternatives = [(t, s) for t, s in zip(ids, scores, strict=True)] if len(ids) > 1 else []
        spans = self._spans(log_probs, tokens)
        if spans is not None:
            spans = spans[:budget]
        return Decoded(tokens[:budget], probs[:budget], stop, alternatives, spans)

    def _spans(self, log_probs: torch.Tensor, tokens: list[int]) -> np.ndarray | None:
        """Each token's time, its word's as the head's letters place it (``word_seconds``);
        None (the aligner times them) where the words' spelling and the tokens' disagree."""
        pieces = self.model.token_text.pieces(tokens)
        token_word, n_words = piece_word_index(pieces)
        words = word_seconds(log_probs.numpy(), "".join(pieces))
        return words[token_word] if len(words) == n_words else None
