"""Decoding: options, the beam search, word scorers (lexicon, n-gram) and stop rules.

``voxlm.decoding.Word`` / ``Transcript`` and the ``STOP_*`` names are kept importable from here
for code written against earlier versions; they are defined in ``voxlm.results``.
"""

from voxlm.decoding.options import DecodingOptions
from voxlm.decoding.search import Decoded, generate
from voxlm.decoding.stopping import stop_rule
from voxlm.results import (
    STOP_EOS,
    STOP_LOW_CONFIDENCE,
    STOP_MAX_TOKENS,
    STOP_NO_SPEECH,
    STOP_REPETITION,
    Transcript,
    Word,
)

__all__ = [
    "STOP_EOS",
    "STOP_LOW_CONFIDENCE",
    "STOP_MAX_TOKENS",
    "STOP_NO_SPEECH",
    "STOP_REPETITION",
    "Decoded",
    "DecodingOptions",
    "Transcript",
    "Word",
    "generate",
    "stop_rule",
]
