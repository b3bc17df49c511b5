"""The rules that stop a transcript drifting into text the audio does not hold."""

from __future__ import annotations

from voxlm.decoding.options import DecodingOptions
from voxlm.results import STOP_LOW_CONFIDENCE, STOP_REPETITION


def stop_rule(
    tokens: list[int], probs: list[float], options: DecodingOptions
) -> tuple[str, int] | None:
    """The hallucination rule that fires on this prefix, with how many tokens to keep.

    Low confidence: the mean probability of the last ``confidence_window`` tokens is below
    ``min_confidence``; the transcript is cut before the first unsure token of the window.
    Repetition: the last n tokens (n <= ``max_ngram``) occur ``max_repeats`` times back to back;
    one copy is kept.
    """
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
