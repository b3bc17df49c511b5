"""Earlier home of the aligner, its training targets and word timing; kept so that existing
imports work. New code imports from ``voxlm.aligner``, ``voxlm.labels`` and ``voxlm.timing``."""

from voxlm.aligner import Aligner, alignment_loss
from voxlm.labels import span_targets
from voxlm.timing import (
    CONFIDENCE_METHODS,
    dtw,
    median_filter,
    token_spans,
    tokens_to_words,
    word_confidence,
    word_posteriors,
)

__all__ = [
    "CONFIDENCE_METHODS",
    "Aligner",
    "alignment_loss",
    "dtw",
    "median_filter",
    "span_targets",
    "token_spans",
    "tokens_to_words",
    "word_confidence",
    "word_posteriors",
]
