"""Decoding options, result types, confidence and the rules that stop hallucinations."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch

from voxlm.ctc import CTCPrefixScorer

if TYPE_CHECKING:
    from voxlm.llm import Prompt
    from voxlm.model import AudioFeatures, VoxLM


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
    """

    max_tokens_per_second: float = 30.0
    min_confidence: float = 0.25
    confidence_window: int = 8
    max_repeats: int = 4
    max_ngram: int = 16
    ctc_weight: float = 0.5
    ctc_candidates: int = 8
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
    """One row's generated transcript tokens (EOS excluded) and each token's probability."""

    tokens: list[int]
    probs: list[float]
    stop_reason: str


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


@torch.no_grad()
def generate(
    model: VoxLM,
    audio: AudioFeatures,
    prompts: list[Prompt],
    max_new_tokens: list[int],
    options: DecodingOptions,
) -> list[Decoded]:
    """Greedy KV-cached decoding of a batch, keeping each token's probability.

    Rows stop independently (EOS, a hallucination rule, or their token budget); the batch runs
    until every row has stopped. With a CTC head and ``options.ctc_weight`` the choice of each
    token is joint with CTC's prefix score.
    """
    eos = model.tokenizer.eos_token_id
    seq = model.assemble(audio, prompts, [[] for _ in prompts])
    embed = model.llm.get_input_embeddings()
    b = len(prompts)
    rows = [Decoded([], [], STOP_MAX_TOKENS) for _ in range(b)]
    done = [n <= 0 for n in max_new_tokens]
    mask, positions = seq.attention_mask, seq.text_position[:, None] - 1
    scorer = None
    if options.ctc_weight > 0 and audio.ctc_log_probs is not None:
        scorer = CTCPrefixScorer(audio.ctc_log_probs, audio.mask.sum(1))
    out = model.llm(
        inputs_embeds=seq.embeds,
        attention_mask=mask,
        position_ids=seq.position_ids,
        use_cache=True,
        logits_to_keep=1,
    )
    while not all(done):
        log_probs = out.logits[:, -1].float().log_softmax(-1)  # [B, V]
        if scorer is None:
            best_prob, best = log_probs.exp().max(-1)  # [B]
        else:
            top = log_probs.topk(min(options.ctc_candidates, log_probs.shape[-1]), dim=-1)
            w = options.ctc_weight
            joint = (1 - w) * top.values + w * scorer.score(top.indices, eos).float()  # [B, K]
            # No candidate CTC can emit (w = 1, none in its vocabulary): the LLM decides.
            joint = torch.where(joint.isfinite().any(-1, keepdim=True), joint, top.values)
            best_prob, choice = joint.softmax(-1).max(-1)  # [B]
            best = top.indices.gather(1, choice[:, None])[:, 0]  # [B]
            scorer.advance(best)
        for i in range(b):
            if done[i]:
                continue
            token = int(best[i])
            if token == eos:
                rows[i].stop_reason, done[i] = STOP_EOS, True
                continue
            rows[i].tokens.append(token)
            rows[i].probs.append(float(best_prob[i]))
            fired = stop_rule(rows[i].tokens, rows[i].probs, options)
            if fired is not None:
                rows[i].stop_reason, keep = fired
                del rows[i].tokens[keep:], rows[i].probs[keep:]
                done[i] = True
            elif len(rows[i].tokens) >= max_new_tokens[i]:
                done[i] = True
        if all(done):
            break
        mask = torch.cat([mask, mask.new_ones(b, 1)], dim=1)
        positions = positions + 1
        out = model.llm(
            inputs_embeds=embed(best[:, None]),
            attention_mask=mask,
            position_ids=positions,
            cache=out.cache,
            use_cache=True,
        )
    return rows
