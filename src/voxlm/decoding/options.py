"""How decoding searches and when it stops itself: one frozen dataclass, checked once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from voxlm.silero import SileroOptions

if TYPE_CHECKING:
    from voxlm.lexicon import Lexicon
    from voxlm.ngram import NGramLM

CONFIDENCE_METHODS = ("geometric", "mean", "min")  # see timing.word_confidence
VAD_METHODS = ("silero", "energy")  # voxlm.silero, voxlm.vad
_SILERO = SileroOptions()  # the speech detector's defaults live there


@dataclass(frozen=True)
class DecodingOptions:
    """How generation runs and when it stops itself. Every stop rule can be switched off with 0.

    Stop rules: a token-probability floor of 0.25 over 8 tokens catches the drift into text the
    audio does not support; 4 back-to-back copies of any n-gram (n <= 16 tokens) is the classic
    "the the the" loop; 30 tokens per second is above fast speech even in characters (espeak-ng
    at 210 wpm gives ~20 chars/s), so it only fires on runaway output.

    ``ctc_weight`` > 0 lets a model with a CTC head vote on every token (joint CTC/LLM decoding,
    see ``voxlm.ctc``): each of the LLM's ``ctc_candidates`` best next tokens is scored by
    (1 - w) log p_LLM + w log p_CTC(transcript so far + token), and a token's probability (for
    confidence and the low-confidence stop) is the softmax of these scores over the candidates:
    where the LLM and CTC disagree, the token is unsure. A model without a CTC head decodes with
    the LLM alone, as does one whose head spells characters (``model.ctc_units``).

    ``beam_size`` > 1 searches (``voxlm.decoding.search``); ``lexicon`` keeps the transcript to
    listed words (``voxlm.lexicon``); ``ngram`` adds ``ngram_weight`` times a word n-gram model's
    log probability of each word a hypothesis finishes, and its end, plus ``word_bonus`` per word
    (``voxlm.ngram``; the bonus offsets the n-gram model's preference for fewer words). The
    n-gram model scores whole words, so it needs a beam: greedy decoding has chosen a word's
    letters before the model can weigh the word. ``confidence_temperature`` divides the scores
    before the softmax that gives token probabilities: CTC's prefix scores differ by tens of
    nats, so the joint softmax is nearly 0 or 1 and a word's mean hides which of its tokens were
    contested. The n-gram model does not enter token probabilities, only the beam's scores (and
    so the n-best agreement that also weighs each word's confidence).

    ``letters_beam`` > 0 decodes a model whose CTC head spells characters letters first
    (``voxlm.decoding.letters``): a ``letters_beam``-wide CTC beam search over the head's
    characters keeps to the ``lexicon``'s words (needed; a word list, most frequent word first),
    each word adding ``word_prior_weight`` times its Zipf log prior by rank and ``word_bonus``,
    and the LLM rescores the final beam at ``letters_llm_weight``. The LLM then does not write:
    ``ctc_weight``, ``beam_size``, ``ngram`` and the stop rules other than the token budget do
    not apply.

    ``vad`` chooses the speech detector behind ``no_speech_check`` and the cutting of long audio
    into windows: ``silero`` (Silero VAD, ``voxlm.silero``; its thresholds are ``vad_threshold``,
    ``min_speech_ms``, ``min_silence_ms`` and ``speech_pad_ms``) decodes only windows of speech,
    cut in the longest pauses; ``energy`` (``voxlm.vad``) covers the whole audio, cut at its
    quietest stretches. Silero falls back to the energy detector where its model cannot load.
    ``window_seconds`` bounds the windows and ``pack_windows`` says whether Silero's speech
    regions are packed together into them; None takes the model's (``ModelConfig``).

    ``calibrate`` applies the model's confidence calibration (``calibration.json`` in its
    directory, fitted by ``voxlm calibrate``; ``voxlm.calibration``) to each word's confidence,
    keeping the raw score in ``Word.raw_confidence``; off, or for a model without one, words
    carry the raw score.

    ``ignore_eos`` is for benchmarking only: EOS is never chosen, so (with the stop rules off)
    every window decodes its whole token budget, ``max_tokens_per_second`` of its audio, and a
    model with random weights does the same work as a trained one (``voxlm bench``).
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
    letters_beam: int = 0
    word_prior_weight: float = 0.5
    letters_llm_weight: float = 2.0
    no_speech_check: bool = True
    word_confidence: str = "geometric"  # see timing.word_confidence
    median_filter_width: int = 3
    batch_size: int = 8
    vad: str = "silero"
    vad_threshold: float = _SILERO.vad_threshold
    min_speech_ms: int = _SILERO.min_speech_ms
    min_silence_ms: int = _SILERO.min_silence_ms
    speech_pad_ms: int = _SILERO.speech_pad_ms
    window_seconds: float | None = None
    pack_windows: bool | None = None
    ignore_eos: bool = False  # benchmarking only: see above
    calibrate: bool = True

    def __post_init__(self) -> None:
        if self.word_confidence not in CONFIDENCE_METHODS:
            raise ValueError(
                f"word_confidence must be geometric, mean or min, got {self.word_confidence!r}"
            )
        if self.vad not in VAD_METHODS:
            raise ValueError(f"vad must be silero or energy, got {self.vad!r}")
        _ = self.silero  # checks the thresholds
        if self.window_seconds is not None and self.window_seconds <= 0:
            raise ValueError(f"window_seconds must be > 0, got {self.window_seconds}")
        if not 0 <= self.ctc_weight <= 1:
            raise ValueError(f"ctc_weight must be in [0, 1], got {self.ctc_weight}")
        for name in ("ngram_weight", "letters_beam", "word_prior_weight", "letters_llm_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.confidence_temperature <= 0:
            raise ValueError(
                f"confidence_temperature must be > 0, got {self.confidence_temperature}"
            )
        if self.letters_beam and self.lexicon is None:
            raise ValueError("letters_beam needs a lexicon: a word list, most frequent first")
        for name in ("beam_size", "ctc_candidates", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_tokens_per_second", "min_confidence", "confidence_window", "max_repeats"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def silero(self) -> SileroOptions:
        """The Silero VAD thresholds of these options."""
        return SileroOptions(
            self.vad_threshold, self.min_speech_ms, self.min_silence_ms, self.speech_pad_ms
        )
