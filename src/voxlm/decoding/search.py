"""KV-cached beam search over the joint LLM / CTC score, with word scorers and stop rules.

A hypothesis scores (1 - w) log p_LLM(tokens) + w log p_CTC(prefix), with w the CTC weight
where the model has a CTC head and 0 otherwise. Greedy decoding (a beam of 1) commits to each
token: where CTC hears "o" and the LLM knows the word is "honest", the "h" is lost before the
LLM can say so; a beam keeps both spellings until the next tokens decide. Both sums only fall
as a hypothesis grows, so a row stops once its best ended hypothesis outscores every live one
(or ``beam_size`` have ended) and answers with the best that ended with EOS. An n-gram model's
share is added as each word is finished; it too only falls unless ``word_bonus`` is positive,
when the stop is a close approximation. A hypothesis that trips a stop rule or its token budget
leaves the search, cut where the rule says, and is the answer only if none ends with EOS.

Each token's probability (confidence, the low-confidence rule) is the LLM's own, or with CTC or
a lexicon the softmax of the candidates' scores (those the lexicon allows), both at
``confidence_temperature``. With a lexicon, a token that would spell an unlisted word is never
chosen while a listed one is among the candidates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from voxlm.ctc import CTCPrefixScorer, SpellingPrefixScorer
from voxlm.decoding.options import DecodingOptions
from voxlm.decoding.stopping import stop_rule
from voxlm.decoding.words import WordScorer, WordState, WordStep, after
from voxlm.precision import widen
from voxlm.results import STOP_EOS, STOP_MAX_TOKENS
from voxlm.timer import count, stage

if TYPE_CHECKING:
    from voxlm.llm import Prompt
    from voxlm.model import AudioFeatures, VoxLM


@dataclass
class Decoded:
    """One row's generated transcript tokens (EOS excluded) and each token's probability.

    ``alternatives``: with beam search, every transcript that ended with EOS (this one
    among them) as (tokens, score), for n-best word posteriors. ``spans``: each token's
    (start, end) in seconds of the window, where the search timed its own tokens (letters
    first); else the aligner times them.
    """

    tokens: list[int]
    probs: list[float]
    stop_reason: str
    alternatives: list[tuple[list[int], float]] = field(default_factory=list)
    spans: np.ndarray | None = None


@dataclass
class Prefix:
    """The LLM's KV cache of a batch's [prefix][audio][suffix], one row per input, with that
    sequence's attention mask [B, L] and the position id of each row's first transcript token:
    what a pass over the transcript alone needs (``VoxLM.aligner_attention``)."""

    cache: object
    attention_mask: torch.Tensor
    text_position: torch.Tensor


@dataclass
class _Hypothesis:
    tokens: list[int]
    probs: list[float]
    score: float  # (1 - w) sum log p_LLM + w log p_CTC(prefix) [+ the n-gram's share]
    words: WordState = WordState()
    stop_reason: str = STOP_MAX_TOKENS


@dataclass
class _Candidates:
    """One step's candidates for every beam slot [B*K, C] (on the CPU)."""

    tokens: torch.Tensor  # token ids
    probs: torch.Tensor  # each token's probability (confidence)
    scores: torch.Tensor  # the hypothesis's total score if the token is taken
    llm: torch.Tensor  # its sum of LLM log-probabilities
    ctc: torch.Tensor  # its CTC prefix log-probability
    ngram: torch.Tensor  # its n-gram share
    word_steps: list[list[WordStep]] | None  # what each token does to the words


@torch.no_grad()
def generate(
    model: VoxLM,
    audio: AudioFeatures,
    prompts: list[Prompt],
    max_new_tokens: list[int],
    options: DecodingOptions,
) -> list[Decoded]:
    """Beam search of a batch (``options.beam_size`` 1: greedy decoding); see the module."""
    with stage("prefill"):
        search = BeamSearch(model, audio, prompts, options)
    return search.run(max_new_tokens)


class BeamSearch:
    """The search state of one batch: K beam slots per row, B*K rows of KV cache."""

    def __init__(
        self, model: VoxLM, audio: AudioFeatures, prompts: list[Prompt], options: DecodingOptions
    ) -> None:
        self.model, self.options = model, options
        self.eos = model.tokenizer.eos_token_id
        self.k = k = options.beam_size
        self.b = b = len(prompts)
        self.seq = model.assemble(audio, prompts, [[] for _ in prompts])
        self.slots = torch.arange(b, device=self.seq.embeds.device).repeat_interleave(k)
        self.ctc = None
        if options.ctc_weight > 0 and audio.ctc_log_probs is not None:
            lengths = audio.mask.sum(1)
            if model.config.ctc_units == "characters":  # the head spells: score each piece
                self.ctc = SpellingPrefixScorer(
                    audio.ctc_log_probs, lengths, model.token_text.piece
                )
            else:
                self.ctc = CTCPrefixScorer(audio.ctc_log_probs, lengths)
            self.ctc.select(self.slots)
        self.w = options.ctc_weight if self.ctc is not None else 0.0
        self.words = WordScorer.create(options, model.token_text, self.eos)
        scored = self.ctc is not None or options.lexicon is not None
        self.n_candidates = max(options.ctc_candidates if scored else k, k)
        self.llm_sum = torch.zeros(b * k, dtype=torch.float64)  # sum log p_LLM of each slot
        self.ctc_prefix = torch.zeros(b * k, dtype=torch.float64)  # log p_CTC(prefix)
        self.ngram_sum = torch.zeros(b * k, dtype=torch.float64)  # the n-gram's share
        self.beams: list[list[_Hypothesis]] = [[_Hypothesis([], [], 0.0)] for _ in range(b)]
        self.ended: list[list[_Hypothesis]] = [[] for _ in range(b)]  # with EOS
        self.stopped: list[list[_Hypothesis]] = [[] for _ in range(b)]  # by a rule or budget
        self.cache = None  # the KV cache once run, for prefix()
        self.prefix_length = 0  # its length after the prefill

    def run(self, max_new_tokens: list[int]) -> list[Decoded]:
        with stage("prefill"):
            cache, logits = self.model.prefill(self.seq)
            logits = logits[self.slots]
            cache.reorder_cache(self.slots)
        self.prefix_length = cache.get_seq_length()
        mask = self.seq.attention_mask[self.slots]
        positions = (self.seq.text_position[:, None] - 1)[self.slots]
        done = [n <= 0 for n in max_new_tokens]
        with stage("decode"):
            while not all(done):
                count("tokens", done.count(False))  # one more token for every live row
                candidates = self._candidates(logits)
                # The slot each extends; a finished row's slots keep their own (its prefix).
                parent = torch.arange(self.b * self.k)
                chosen = torch.full((self.b * self.k,), self.eos, dtype=torch.long)
                for i in range(self.b):
                    if not done[i]:
                        done[i] = self._extend(i, candidates, max_new_tokens[i], parent, chosen)
                if all(done):
                    break
                parent, chosen = parent.to(mask.device), chosen.to(mask.device)
                cache.reorder_cache(parent)
                if self.ctc is not None:
                    self.ctc.select(parent)
                    self.ctc.advance(chosen)
                mask = torch.cat([mask[parent], mask.new_ones(self.b * self.k, 1)], dim=1)
                positions = positions[parent] + 1
                cache, logits = self.model.step(chosen, mask, positions, cache)
        self.cache = cache
        return [self._answer(i) for i in range(self.b)]

    def prefix(self) -> Prefix | None:
        """After ``run``: the prefill's KV cache, cut back from the decoded tokens, one row per
        input (every beam slot of a row holds the same prefix); None where the cache cannot be
        cut back (a sliding-window layer may have dropped the prefix's start)."""
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        cache = self.cache
        if not isinstance(cache, DynamicCache) or any(
            type(layer) is not DynamicLayer for layer in cache.layers
        ):
            return None
        grown = cache.get_seq_length() - self.prefix_length
        if grown:
            cache.crop(-grown)
        cache.batch_select_indices(torch.arange(self.b, device=self.slots.device) * self.k)
        self.cache = None  # cut and reordered: not for decoding any more
        return Prefix(cache, self.seq.attention_mask, self.seq.text_position)

    def _candidates(self, logits: torch.Tensor) -> _Candidates:
        """Score each slot's best next tokens: LLM, CTC prefix, lexicon and n-gram."""
        if self.options.ignore_eos:  # a benchmark's fixed amount of work: EOS is never chosen
            logits = logits.clone()
            logits[:, self.eos] = -math.inf
        log_probs = widen(logits).log_softmax(-1)  # [B*K, V]
        top = log_probs.topk(min(self.n_candidates, log_probs.shape[-1]), dim=-1)  # [B*K, C]
        tokens, step_scores = top.indices.cpu(), top.values.cpu()
        llm = self.llm_sum[:, None] + step_scores.double()  # [B*K, C]
        if self.ctc is None:
            ctc = self.ctc_prefix[:, None].expand_as(llm)
        else:
            ctc_scores = self.ctc.score(top.indices, self.eos).cpu()  # [B*K, C]
            heard = ctc_scores.isfinite().any(-1, keepdim=True)  # else the LLM decides alone
            step_scores = torch.where(
                heard,
                (1 - self.w) * step_scores + self.w * ctc_scores.to(step_scores.dtype),
                step_scores,
            )
            ctc = torch.where(heard, ctc_scores, self.ctc_prefix[:, None])
        scores = (1 - self.w) * llm + self.w * ctc  # [B*K, C]
        ngram, word_steps = self.ngram_sum[:, None].expand_as(llm), None
        if self.words is not None:
            states = [[h.words for h in row] for row in self.beams]
            word_steps, blocked, added = self.words.table(states, self.k, tokens)
            step_scores = step_scores.masked_fill(blocked, -math.inf)
            ngram = self.ngram_sum[:, None] + added
            scores = scores.masked_fill(blocked, -math.inf) + ngram
        t = self.options.confidence_temperature
        if self.ctc is None and self.words is None:  # the LLM's own probability
            scaled = log_probs if t == 1 else (widen(logits) / t).log_softmax(-1)
            probs = scaled.gather(1, top.indices).exp().cpu()
        else:  # the token's share among the tokens that could be written
            probs = (step_scores / t).softmax(-1)
        return _Candidates(tokens, probs, scores, llm, ctc, ngram, word_steps)

    def _extend(
        self,
        i: int,
        candidates: _Candidates,
        budget: int,
        parent: torch.Tensor,
        chosen: torch.Tensor,
    ) -> bool:
        """Grow row ``i``'s beams by its best candidates; fill its slots of ``parent`` and
        ``chosen``; return whether the row is done."""
        k, first = self.k, i * self.k
        beams = self.beams[i]
        n = candidates.tokens.shape[1]
        row_scores = candidates.scores[first : first + len(beams)].flatten()  # [live * C]
        survivors: list[_Hypothesis] = []
        for index in row_scores.argsort(descending=True).tolist():
            if len(survivors) == k or not math.isfinite(row_scores[index]):
                break
            j, c = divmod(index, n)
            slot = first + j
            hypothesis = self._grow(beams[j], candidates, slot, c, float(row_scores[index]))
            if hypothesis.stop_reason == STOP_EOS:
                self.ended[i].append(hypothesis)
            elif hypothesis.stop_reason != STOP_MAX_TOKENS or len(hypothesis.tokens) >= budget:
                self.stopped[i].append(hypothesis)
            else:
                new = first + len(survivors)
                parent[new], chosen[new] = slot, hypothesis.tokens[-1]
                self.llm_sum[new] = candidates.llm[slot, c]
                self.ctc_prefix[new] = candidates.ctc[slot, c]
                self.ngram_sum[new] = candidates.ngram[slot, c]
                survivors.append(hypothesis)
        self.beams[i] = survivors
        best_ended = max((h.score for h in self.ended[i]), default=-math.inf)
        return not survivors or len(self.ended[i]) >= k or best_ended >= survivors[0].score

    def _grow(
        self, parent: _Hypothesis, candidates: _Candidates, slot: int, c: int, score: float
    ) -> _Hypothesis:
        """``parent`` with candidate ``c`` of its slot: ended at EOS, cut by a stop rule, or
        grown (stop reason STOP_MAX_TOKENS until another applies)."""
        token = int(candidates.tokens[slot, c])
        if token == self.eos:
            return _Hypothesis(parent.tokens, parent.probs, score, stop_reason=STOP_EOS)
        prob = float(candidates.probs[slot, c])
        grown = _Hypothesis([*parent.tokens, token], [*parent.probs, prob], score)
        if candidates.word_steps is not None:
            grown.words = after(parent.words, candidates.word_steps[slot][c])
        fired = stop_rule(grown.tokens, grown.probs, self.options)
        if fired is not None:
            grown.stop_reason, keep = fired
            del grown.tokens[keep:], grown.probs[keep:]
        return grown

    def _answer(self, i: int) -> Decoded:
        best = max(
            self.ended[i] or self.stopped[i] or [_Hypothesis([], [], 0.0)], key=lambda h: h.score
        )
        alternatives = [(h.tokens, h.score) for h in self.ended[i]] if self.k > 1 else []
        return Decoded(best.tokens, best.probs, best.stop_reason, alternatives)
