"""Decoding options, result types, confidence and the rules that stop hallucinations."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import torch

from voxlm.ctc import CTCPrefixScorer
from voxlm.lexicon import split_words
from voxlm.ngram import EOS as END_OF_SENTENCE

if TYPE_CHECKING:
    from voxlm.lexicon import Lexicon
    from voxlm.llm import Prompt
    from voxlm.model import AudioFeatures, VoxLM
    from voxlm.ngram import NGramLM


@dataclass(frozen=True)
class Word:
    """One transcribed word: times in seconds from the start of the audio, confidence in [0, 1]."""

    word: str
    start: float
    end: float
    confidence: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Transcript:
    """The result for one audio input. ``stop_reason`` names the rule that ended decoding."""

    text: str
    words: tuple[Word, ...]
    audio_duration: float
    stop_reason: str | None = None
    language: str | None = None

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "words": [w.to_dict() for w in self.words],
            "audio_duration": self.audio_duration,
            "stop_reason": self.stop_reason,
        }


@dataclass(frozen=True)
class DecodingOptions:
    """How generation runs and when it stops itself. Every rule can be switched off with 0.

    Defaults: a token-probability floor of 0.25 over 8 tokens catches the drift into text the
    audio does not support; 4 back-to-back copies of any n-gram (n <= 16 tokens) is the classic
    "the the the" loop; 30 tokens per second is above fast speech even in characters (espeak-ng
    at 210 wpm gives ~20 chars/s), so it only fires on runaway output.

    ``ctc_weight`` > 0 lets a model with a CTC head vote on every token (joint CTC/LLM decoding,
    see ``voxlm.ctc``): each of the LLM's ``ctc_candidates`` best next tokens is scored by
    (1 - w) log p_LLM + w log p_CTC(transcript so far + token), and a token's probability (for
    confidence and the low-confidence stop) is the softmax of these scores over the candidates:
    where the LLM and CTC disagree, the token is unsure. A model without a CTC head decodes with
    the LLM alone. On the demo's 20-minute model, w = 0.5 took test WER from 54% to 32% and
    confidence AUROC from 0.88 to 0.92 (BENCHMARKS.md).

    ``beam_size`` > 1 searches (see ``generate``); ``lexicon`` keeps the transcript to listed
    words (``voxlm.lexicon``); ``ngram`` adds ``ngram_weight`` times a word n-gram model's log
    probability of each word a hypothesis finishes, and its end, plus ``word_bonus`` per word
    (``voxlm.ngram``; the bonus offsets the n-gram model's preference for fewer words). The
    n-gram model scores whole words, so it needs a beam: greedy decoding has chosen a word's
    letters before the model can weigh the word. ``confidence_temperature`` divides the
    scores before the softmax that gives token probabilities: CTC's prefix scores differ by
    tens of nats, so the joint softmax is nearly 0 or 1 and a word's mean hides which of its
    tokens were contested; at 2, the demo's dev-set AUROC with beam search rose from 0.850 to
    0.874. The n-gram model does not enter token probabilities, only the beam's scores (and so
    the n-best agreement that also weighs each word's confidence).
    """

    max_tokens_per_second: float = 30.0
    min_confidence: float = 0.25
    confidence_window: int = 8
    max_repeats: int = 4
    max_ngram: int = 16
    ctc_weight: float = 0.5
    ctc_candidates: int = 8
    beam_size: int = 1
    lexicon: Lexicon | None = None
    ngram: NGramLM | None = None
    ngram_weight: float = 0.5
    word_bonus: float = 0.0
    confidence_temperature: float = 1.0
    no_speech_check: bool = True
    word_confidence: str = "geometric"  # see alignment.word_confidence
    median_filter_width: int = 3
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.word_confidence not in ("geometric", "mean", "min"):
            raise ValueError(
                f"word_confidence must be geometric, mean or min, got {self.word_confidence!r}"
            )
        if not 0 <= self.ctc_weight <= 1:
            raise ValueError(f"ctc_weight must be in [0, 1], got {self.ctc_weight}")
        if self.ngram_weight < 0:
            raise ValueError(f"ngram_weight must be >= 0, got {self.ngram_weight}")
        if self.confidence_temperature <= 0:
            raise ValueError(
                f"confidence_temperature must be > 0, got {self.confidence_temperature}"
            )
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {self.beam_size}")
        if self.ctc_candidates < 1:
            raise ValueError(f"ctc_candidates must be >= 1, got {self.ctc_candidates}")
        for name in ("max_tokens_per_second", "min_confidence", "confidence_window", "max_repeats"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


STOP_EOS = "eos"
STOP_LOW_CONFIDENCE = "low_confidence"
STOP_REPETITION = "repetition"
STOP_MAX_TOKENS = "max_tokens_per_second"
STOP_NO_SPEECH = "no_speech"


@dataclass
class Decoded:
    """One row's generated transcript tokens (EOS excluded) and each token's probability.

    ``alternatives``: with beam search, every transcript that ended with EOS (this one
    among them) as (tokens, score), for n-best word posteriors.
    """

    tokens: list[int]
    probs: list[float]
    stop_reason: str
    alternatives: list[tuple[list[int], float]] = field(default_factory=list)


def stop_rule(
    tokens: list[int], probs: list[float], options: DecodingOptions
) -> tuple[str, int] | None:
    """The hallucination rule that fires on this prefix, with how many tokens to keep."""
    window = options.confidence_window
    if options.min_confidence > 0 and window and len(probs) >= window:
        recent = probs[-window:]
        if sum(recent) / window < options.min_confidence:
            first_low = next(i for i, p in enumerate(recent) if p < options.min_confidence)
            return STOP_LOW_CONFIDENCE, len(probs) - window + first_low
    r = options.max_repeats
    if r > 1:
        for n in range(1, options.max_ngram + 1):
            if len(tokens) < n * r:
                break
            gram = tokens[-n:]
            if all(tokens[-(k + 1) * n : len(tokens) - k * n] == gram for k in range(1, r)):
                return STOP_REPETITION, len(tokens) - n * (r - 1)
    return None


@dataclass
class _Hypothesis:
    tokens: list[int]
    probs: list[float]
    score: float  # (1 - w) sum log p_LLM + w log p_CTC(prefix) [+ the n-gram's share]
    partial: str = ""  # the unfinished last word, for a lexicon or an n-gram model
    words: tuple[str, ...] = ()  # the finished words, for an n-gram model
    stop_reason: str = STOP_MAX_TOKENS


@torch.no_grad()
def generate(
    model: VoxLM,
    audio: AudioFeatures,
    prompts: list[Prompt],
    max_new_tokens: list[int],
    options: DecodingOptions,
) -> list[Decoded]:
    """KV-cached beam search of a batch (``options.beam_size`` 1: greedy decoding).

    A hypothesis scores (1 - w) log p_LLM(tokens) + w log p_CTC(prefix), with w the CTC
    weight where the model has a CTC head and 0 otherwise. Greedy decoding commits to each
    token: where CTC hears "o" and the LLM knows the word is "honest", the "h" is lost before
    the LLM can say so; a beam keeps both spellings until the next tokens decide. Both sums
    only fall as a hypothesis grows, so a row stops once its best ended hypothesis outscores
    every live one (or ``beam_size`` have ended) and answers with the best that ended with EOS.
    An n-gram model's share (``options.ngram``) is added as each word is finished; it too only
    falls unless ``options.word_bonus`` is positive, when the stop is a close approximation.
    A hypothesis that trips a hallucination rule or its token budget leaves the search, cut
    where the rule says, and is the answer only if none ends with EOS. Each token's
    probability (confidence, the low-confidence rule) is the LLM's own, or with CTC or a
    lexicon the softmax of the candidates' scores (those the lexicon allows), both at
    ``options.confidence_temperature``. With ``options.lexicon`` a token that would spell an
    unlisted word is never chosen while a listed one is among the candidates.
    """
    eos = model.tokenizer.eos_token_id
    k = options.beam_size
    seq = model.assemble(audio, prompts, [[] for _ in prompts])
    embed = model.llm.get_input_embeddings()
    b = len(prompts)
    out = model.llm(
        inputs_embeds=seq.embeds,
        attention_mask=seq.attention_mask,
        position_ids=seq.position_ids,
        use_cache=True,
        logits_to_keep=1,
    )
    rows = torch.arange(b, device=seq.embeds.device).repeat_interleave(k)  # [B*K] beam -> row
    cache, logits = out.cache, out.logits[:, -1][rows]
    cache.reorder_cache(rows)
    mask, positions = seq.attention_mask[rows], (seq.text_position[:, None] - 1)[rows]
    scorer = None
    if options.ctc_weight > 0 and audio.ctc_log_probs is not None:
        scorer = CTCPrefixScorer(audio.ctc_log_probs, audio.mask.sum(1))
        scorer.select(rows)
    w = options.ctc_weight if scorer is not None else 0.0
    pool = options.ctc_candidates if scorer is not None or options.lexicon is not None else k
    pieces = _Pieces(model.tokenizer)
    llm_sum = torch.zeros(b * k, dtype=torch.float64)  # sum log p_LLM of each beam
    ctc_prefix = torch.zeros(b * k, dtype=torch.float64)  # log p_CTC(prefix) of each beam
    ngram_sum = torch.zeros(b * k, dtype=torch.float64)  # the n-gram's share of each beam
    beams: list[list[_Hypothesis]] = [[_Hypothesis([], [], 0.0)] for _ in range(b)]
    ended: list[list[_Hypothesis]] = [[] for _ in range(b)]  # with EOS
    cut: list[list[_Hypothesis]] = [[] for _ in range(b)]  # by a rule or the budget
    done = [n <= 0 for n in max_new_tokens]
    while not all(done):
        log_probs = logits.float().log_softmax(-1)  # [B*K, V]
        n = min(max(pool, k), log_probs.shape[-1])
        top = log_probs.topk(n, dim=-1)  # [B*K, C]
        indices, local = top.indices.cpu(), top.values.cpu()
        llm_new = llm_sum[:, None] + local.double()  # [B*K, C]
        if scorer is None:
            ctc_new = ctc_prefix[:, None].expand_as(llm_new)
        else:
            ctc = scorer.score(top.indices, eos).cpu()  # [B*K, C]
            heard = ctc.isfinite().any(-1, keepdim=True)  # else the LLM decides alone
            local = torch.where(heard, (1 - w) * local + w * ctc.float(), local)
            ctc_new = torch.where(heard, ctc, ctc_prefix[:, None])
        total = (1 - w) * llm_new + w * ctc_new  # [B*K, C]
        following_words = _continuations(options, beams, k, indices, eos, pieces)
        if following_words is not None:
            blocked = torch.tensor([[p is None for p in row] for row in following_words])
            local, total = (
                local.masked_fill(blocked, -math.inf),
                total.masked_fill(blocked, -math.inf),
            )
            added = _ngram_scores(options, beams, k, indices, eos, following_words)
            ngram_new = ngram_sum[:, None] + added
            total = total + ngram_new
        # The LLM's own probability, or the share among the tokens that could be written.
        t = options.confidence_temperature
        if scorer is None and following_words is None:
            scaled = log_probs if t == 1 else (logits.float() / t).log_softmax(-1)
            token_probs = scaled.gather(1, top.indices).exp().cpu()
        else:
            token_probs = (local / t).softmax(-1)
        source = torch.zeros(b * k, dtype=torch.long)  # the beam each new beam extends
        chosen = torch.full((b * k,), eos, dtype=torch.long)
        for i in range(b):
            if done[i]:
                continue
            flat = total[i * k : i * k + len(beams[i])].flatten()  # [live * C]
            following: list[_Hypothesis] = []
            for index in flat.argsort(descending=True).tolist():
                if len(following) == k or not math.isfinite(flat[index]):
                    break
                j, c = divmod(index, n)
                parent, token = beams[i][j], int(indices[i * k + j, c])
                score, prob = float(flat[index]), float(token_probs[i * k + j, c])
                if token == eos:
                    ended[i].append(
                        _Hypothesis(parent.tokens, parent.probs, score, stop_reason=STOP_EOS)
                    )
                    continue
                grown = _Hypothesis([*parent.tokens, token], [*parent.probs, prob], score)
                if following_words is not None:
                    finished, grown.partial = following_words[i * k + j][c]
                    grown.words = (*parent.words, *finished)
                fired = stop_rule(grown.tokens, grown.probs, options)
                if fired is not None:
                    grown.stop_reason, keep = fired
                    del grown.tokens[keep:], grown.probs[keep:]
                    cut[i].append(grown)
                elif len(grown.tokens) >= max_new_tokens[i]:
                    cut[i].append(grown)
                else:
                    slot = i * k + len(following)
                    source[slot], chosen[slot] = i * k + j, token
                    llm_sum[slot], ctc_prefix[slot] = llm_new[i * k + j, c], ctc_new[i * k + j, c]
                    if following_words is not None:
                        ngram_sum[slot] = ngram_new[i * k + j, c]
                    following.append(grown)
            beams[i] = following
            best_ended = max((h.score for h in ended[i]), default=-math.inf)
            done[i] = not following or len(ended[i]) >= k or best_ended >= following[0].score
        if all(done):
            break
        source, chosen = source.to(mask.device), chosen.to(mask.device)
        cache.reorder_cache(source)
        if scorer is not None:
            scorer.select(source)
            scorer.advance(chosen)
        mask = torch.cat([mask[source], mask.new_ones(b * k, 1)], dim=1)
        positions = positions[source] + 1
        out = model.llm(
            inputs_embeds=embed(chosen[:, None]),
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
        )
        cache, logits = out.cache, out.logits[:, -1]
    results = []
    for i in range(b):
        best = max(ended[i] or cut[i] or [_Hypothesis([], [], 0.0)], key=lambda h: h.score)
        alternatives = [(h.tokens, h.score) for h in ended[i]] if k > 1 else []
        results.append(Decoded(best.tokens, best.probs, best.stop_reason, alternatives))
    return results


class _Pieces:
    """The text each token adds after any other text, cached (a lexicon checks candidates).

    Decoded after an anchor letter, because SentencePiece drops a token's leading space at
    the start of a text; a token ending inside a multi-byte character adds "".
    """

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.anchor = tokenizer("a", add_special_tokens=False).input_ids[-1:]
        self.start = tokenizer.decode(self.anchor)
        self.special = set(tokenizer.all_special_ids)
        self.cache: dict[int, str | None] = {}

    def __getitem__(self, token: int) -> str | None:
        """None for a special token (padding, a role marker): it writes no transcript text."""
        if token not in self.cache:
            text = self.tokenizer.decode([*self.anchor, token])
            piece = text[len(self.start) :] if text.startswith(self.start) else text
            self.cache[token] = (
                None if token in self.special else "" if "\ufffd" in piece else piece
            )
        return self.cache[token]


def _continuations(
    options: DecodingOptions,
    beams: list[list[_Hypothesis]],
    k: int,
    candidates: torch.Tensor,
    eos: int,
    pieces: _Pieces,
) -> list[list[tuple[list[str], str] | None]] | None:
    """Per beam slot and candidate [B*K][C]: the words the candidate finishes and the
    unfinished word after it; None where it breaks the lexicon (and for empty slots). EOS
    finishes the last word. A beam none of whose candidates the lexicon allows keeps them all,
    so decoding never dead-ends on a word the LLM does not rank among its best. None for the
    whole table when there is neither a lexicon nor an n-gram model to serve."""
    lexicon = options.lexicon
    if lexicon is None and options.ngram is None:
        return None

    def after(partial: str, token: int) -> tuple[list[str], str] | None:
        if token == eos:
            if lexicon is not None and not lexicon.can_end(partial):
                return None
            return ([partial] if partial else []), ""
        piece = pieces[token]
        if piece is None:  # a special token writes nothing
            return None if lexicon is not None else ([], partial)
        finished, partial = split_words(partial, piece)
        if lexicon is not None and not lexicon.accepts(finished, partial):
            return None
        return finished, partial

    table: list[list[tuple[list[str], str] | None]] = [
        [None] * candidates.shape[1] for _ in range(len(beams) * k)
    ]
    for i, row_beams in enumerate(beams):
        for j, beam in enumerate(row_beams):
            row = candidates[i * k + j].tolist()
            allowed = [after(beam.partial, token) for token in row]
            if all(a is None for a in allowed):
                allowed = [([], "") for _ in row]
            table[i * k + j] = allowed
    return table


def _ngram_scores(
    options: DecodingOptions,
    beams: list[list[_Hypothesis]],
    k: int,
    candidates: torch.Tensor,
    eos: int,
    following_words: list[list[tuple[list[str], str] | None]],
) -> torch.Tensor:
    """[B*K, C]: what each candidate adds to its beam's n-gram share (0 without a model):
    ``ngram_weight`` log P(word | words before) + ``word_bonus`` per finished word, and at
    EOS the log probability of the sentence's end."""
    scores = torch.zeros(candidates.shape, dtype=torch.float64)
    lm = options.ngram
    if lm is None:
        return scores
    for i, row_beams in enumerate(beams):
        for j, beam in enumerate(row_beams):
            row = candidates[i * k + j].tolist()
            before = lm.context(beam.words)
            for c, entry in enumerate(following_words[i * k + j]):
                if entry is None:
                    continue
                history, added = before, 0.0
                for word in entry[0]:
                    added += options.ngram_weight * lm.log_prob(history, word) + options.word_bonus
                    history = lm.context((*history, word))
                if row[c] == eos:
                    added += options.ngram_weight * lm.log_prob(history, END_OF_SENTENCE)
                scores[i * k + j, c] = added
    return scores
