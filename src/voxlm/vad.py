"""Voice activity: which frames hold speech, whether a clip holds any, and where to cut long audio.

A frame is speech when it is loud enough (absolutely and relative to the clip's loudest frame)
and its spectrum is peaked rather than flat: voiced speech puts its energy in harmonics, while
hiss, fans and white noise spread it evenly. This is deliberately simple and fast; it guards
the decoder against silence and noise (where LLM decoders hallucinate) and finds pauses to cut
at, it does not need to find every unvoiced consonant.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from voxlm.audio import SAMPLE_RATE

_POWER_EPS = 1e-12  # keeps log10 finite on digital silence (-120 dBFS)


@dataclasses.dataclass(frozen=True)
class VadOptions:
    """Voice activity thresholds; all audio is float32 mono at SAMPLE_RATE.

    frame_seconds: analysis frame length (non-overlapping frames).
    energy_floor_db: frames with mean power below this many dBFS are silent (a full-scale
        sine is -3 dBFS; quiet speech sits near -40 dBFS).
    relative_db: frames quieter than the loudest frame plus this (negative) many dB are
        silent, so that background noise under speech is not counted as speech.
    max_flatness: frames whose spectral flatness (geometric over arithmetic mean of the power
        spectrum, 0 = one tone, 1 = flat) exceeds this are noise. Measured on 30 ms frames:
        white noise 0.56 (its theoretical e^-0.577), pink noise 0.2 to 0.3, espeak-ng speech
        mostly under 0.1 with fricatives up to 0.5, a synthetic harmonic vowel under 0.05.
        0.4 rejects white noise with margin and keeps every voiced frame.
    min_speech_seconds: has_speech needs at least this much speech in total.
    split_search_seconds: split_points looks for a cut in this many seconds before a limit.
    split_smoothing_seconds: split_points cuts in the middle of the quietest stretch of this
        length, not at the quietest single frame, which may be a stop consonant mid-word.
    """

    frame_seconds: float = 0.03
    energy_floor_db: float = -50.0
    relative_db: float = -35.0
    max_flatness: float = 0.4
    min_speech_seconds: float = 0.1
    split_search_seconds: float = 5.0
    split_smoothing_seconds: float = 0.3

    def __post_init__(self) -> None:
        for name in ("frame_seconds", "split_search_seconds", "split_smoothing_seconds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"VadOptions.{name} must be positive, got {getattr(self, name)}")
        if not 0 < self.max_flatness <= 1:
            raise ValueError(f"VadOptions.max_flatness must be in (0, 1], got {self.max_flatness}")

    @property
    def frame_samples(self) -> int:
        return max(1, round(self.frame_seconds * SAMPLE_RATE))


def _frames(audio: np.ndarray, frame_samples: int) -> np.ndarray:
    """Non-overlapping full frames [F, frame_samples]; a partial last frame is dropped."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono [samples], got shape {audio.shape}")
    n_frames = len(audio) // frame_samples
    return audio[: n_frames * frame_samples].reshape(n_frames, frame_samples)  # [F, frame]


def _frame_power(frames: np.ndarray) -> np.ndarray:
    """Mean power per frame [F] (1.0 = a full-scale square wave)."""
    return np.mean(np.square(frames, dtype=np.float64), axis=1)


def _spectral_flatness(frames: np.ndarray) -> np.ndarray:
    """Spectral flatness per frame [F] of the Hann-windowed power spectrum without DC."""
    window = np.hanning(frames.shape[1])
    spectrum = np.abs(np.fft.rfft(frames * window, axis=1))[:, 1:] ** 2 + _POWER_EPS  # [F, bins]
    return np.exp(np.mean(np.log(spectrum), axis=1)) / np.mean(spectrum, axis=1)


def speech_mask(audio: np.ndarray, options: VadOptions = VadOptions()) -> np.ndarray:
    """Whether each frame holds speech: bool [len(audio) // options.frame_samples]."""
    frames = _frames(audio, options.frame_samples)
    if len(frames) == 0:
        return np.zeros(0, dtype=bool)
    energy_db = frame_energy_db(audio, options.frame_samples)  # [F] dBFS
    floor_db = max(options.energy_floor_db, energy_db.max() + options.relative_db)
    loud = energy_db >= floor_db
    return loud & (_spectral_flatness(frames) <= options.max_flatness)


def frame_energy_db(audio: np.ndarray, frame_samples: int) -> np.ndarray:
    """Mean power of each full frame in dBFS [len(audio) // frame_samples]."""
    return 10.0 * np.log10(_frame_power(_frames(audio, frame_samples)) + _POWER_EPS)


def speech_bounds(audio: np.ndarray, options: VadOptions = VadOptions()) -> tuple[int, int] | None:
    """The first speech frame and one past the last (frames of ``options.frame_samples``),
    or None when no frame holds speech."""
    frames = np.nonzero(speech_mask(audio, options))[0]
    return (int(frames[0]), int(frames[-1]) + 1) if len(frames) else None


def has_speech(audio: np.ndarray, options: VadOptions = VadOptions()) -> bool:
    """True if the audio holds at least options.min_speech_seconds of speech frames."""
    speech_seconds = speech_mask(audio, options).sum() * options.frame_samples / SAMPLE_RATE
    return bool(speech_seconds >= options.min_speech_seconds)


def split_points(
    audio: np.ndarray, max_seconds: float = 30.0, options: VadOptions = VadOptions()
) -> list[tuple[int, int]]:
    """Cut audio into contiguous windows [(start, end), ...] of at most max_seconds each.

    Each cut lands in the middle of the quietest options.split_smoothing_seconds stretch within
    the options.split_search_seconds before the window's limit, so that words stay whole.
    The windows cover the audio without gaps; audio up to max_seconds is one window, empty
    audio none.
    """
    n_samples = len(audio)
    max_samples = int(max_seconds * SAMPLE_RATE)
    if max_samples <= 0:
        raise ValueError(f"max_seconds must be positive, got {max_seconds}")
    if n_samples == 0:
        return []
    if n_samples <= max_samples:  # one window; audio shorter than a frame has no power to smooth
        return [(0, n_samples)]
    frame = options.frame_samples
    width = max(1, round(options.split_smoothing_seconds / options.frame_seconds))  # frames
    power = _frame_power(_frames(audio, frame))  # [F]
    smoothed = np.convolve(power, np.ones(width) / width, mode="valid")  # [F - width + 1]
    search = int(options.split_search_seconds * SAMPLE_RATE)
    windows, start = [], 0
    while n_samples - start > max_samples:
        limit = start + max_samples
        # Candidate stretches: frames first..last+width-1, all within [limit - search, limit].
        first = -(-max(start, limit - search) // frame)  # ceil
        last = limit // frame - width
        if first <= last:
            best = first + int(np.argmin(smoothed[first : last + 1]))
            cut = best * frame + width * frame // 2
        else:  # search region shorter than one stretch: cut at the limit
            cut = limit
        windows.append((start, cut))
        start = cut
    windows.append((start, n_samples))
    return windows
