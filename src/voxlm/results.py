"""What transcription returns: timed words, a transcript, and why decoding stopped."""

from __future__ import annotations

from dataclasses import asdict, dataclass

STOP_EOS = "eos"
STOP_LOW_CONFIDENCE = "low_confidence"
STOP_REPETITION = "repetition"
STOP_MAX_TOKENS = "max_tokens_per_second"
STOP_NO_SPEECH = "no_speech"


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

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "words": [w.to_dict() for w in self.words],
            "audio_duration": self.audio_duration,
            "stop_reason": self.stop_reason,
        }
