"""Timed words: a reference word's span (``WordTiming``), and what transcription returns (a
``Word`` with its confidence, a ``Transcript``, and why decoding stopped)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

STOP_EOS = "eos"
STOP_LOW_CONFIDENCE = "low_confidence"
STOP_REPETITION = "repetition"
STOP_MAX_TOKENS = "max_tokens_per_second"
STOP_NO_SPEECH = "no_speech"


class WordTiming(NamedTuple):
    """A reference word's span in seconds, as manifests and training batches carry it.

    A tuple, so ``word, start, end = timing`` unpacks it; on disk it is the manifest's
    ``{"word", "start", "end"}`` object (``voxlm.data.manifest``).
    """

    word: str
    start: float
    end: float


@dataclass(frozen=True)
class Word:
    """One transcribed word: times in seconds from the start of the audio, confidence in [0, 1].

    ``raw_confidence`` is the model's own score where a calibration (``voxlm.calibration``)
    turned it into ``confidence``, the probability that the word is right; None where none did,
    and then left out of ``to_dict`` so an uncalibrated model's JSON keeps its keys.
    """

    word: str
    start: float
    end: float
    confidence: float
    raw_confidence: float | None = None

    def to_dict(self) -> dict:
        values = asdict(self)
        if self.raw_confidence is None:
            del values["raw_confidence"]
        return values


@dataclass(frozen=True)
class Transcript:
    """The result for one audio input. ``stop_reason`` names the rule that ended decoding."""

    text: str
    words: tuple[Word, ...]
    audio_duration: float
    stop_reason: str | None = None

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "words": [w.to_dict() for w in self.words],
            "audio_duration": self.audio_duration,
            "stop_reason": self.stop_reason,
        }
