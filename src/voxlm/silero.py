"""Silero VAD: speech probability per 32 ms chunk, speech regions, and windows for long audio.

Silero VAD (snakers4/silero-vad, MIT) is the detector faster-whisper and WhisperX use; the
``silero-vad`` package ships it as TorchScript, which loads here without network. Where it
cannot load (the package is missing), every function falls back to the energy detector of
``voxlm.vad`` after one warning line.

Regions follow silero-vad's ``get_speech_timestamps`` (and faster-whisper's copy of it): a
region opens at a chunk with probability >= ``vad_threshold``, closes once the probability has
stayed under ``vad_threshold - 0.15`` for ``min_silence_ms``, is dropped when shorter than
``min_speech_ms``, and is padded by ``speech_pad_ms`` each side (half the gap where two regions
are closer than twice the pad).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxlm import vad
from voxlm.audio import SAMPLE_RATE

logger = logging.getLogger("voxlm")

CHUNK_SAMPLES = 512  # 32 ms at 16 kHz: the chunk Silero VAD v5 scores at this rate
CHUNK_SECONDS = CHUNK_SAMPLES / SAMPLE_RATE  # 0.032 s
NEG_THRESHOLD_OFFSET = 0.15  # silero-vad's hysteresis: a region ends below threshold - 0.15
MIN_PEAK_DBFS = -20.0  # quieter audio is lifted to this peak before Silero scores it ...
MAX_GAIN_DB = 30.0  # ... by at most this, so near-silence is not lifted into noise
# A long input's window is cut in the longest pause within the last half of the encoder's span,
# so that windows are not needlessly short (each window is a separate decode).
MIN_WINDOW_FILL = 0.5
_MODEL_FILE = "silero_vad.jit"
_LOCK = threading.Lock()  # the TorchScript model keeps state between chunks

Region = tuple[int, int]  # (start, end) in samples


@dataclass(frozen=True)
class SileroOptions:
    """Speech-region thresholds. The threshold is silero-vad's and faster-whisper's (0.5); the
    durations are silero-vad's ``get_speech_timestamps`` defaults (250 ms, 100 ms), not
    faster-whisper's ``VadOptions`` (0 ms, 2,000 ms, 400 ms): a 32 ms blip of noise is not
    speech, and pauses of 100 ms are where long audio can be cut. The pad is 200 ms, between the
    two: it keeps a soft onset or final consonant inside its window (chosen, not tuned).
    """

    vad_threshold: float = 0.5
    min_speech_ms: int = 250
    min_silence_ms: int = 100
    speech_pad_ms: int = 200

    def __post_init__(self) -> None:
        if not 0 < self.vad_threshold < 1:
            raise ValueError(f"vad_threshold must be in (0, 1), got {self.vad_threshold}")
        for name in ("min_speech_ms", "min_silence_ms", "speech_pad_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


def model_path() -> Path:
    """The TorchScript model inside the installed silero-vad package.

    Found without importing the package: its ``model`` module calls ``torch.set_num_threads(1)``
    at import, which would slow every other torch operation of the process."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError('silero-vad is not installed (pip install "voxlm[real]")')
    return Path(spec.origin).parent / "data" / _MODEL_FILE


@functools.cache
def load_model():
    """The Silero VAD model, loaded once per process; None (after one warning) where it cannot
    load, so that callers use the energy detector."""
    import torch

    try:
        with warnings.catch_warnings():  # torch 2.9+ deprecates TorchScript; this file is one
            warnings.simplefilter("ignore", DeprecationWarning)
            model = torch.jit.load(str(model_path()), map_location="cpu")
    except Exception as error:  # noqa: BLE001 - any failure to load means the fallback
        logger.warning("Silero VAD cannot load (%s); using the energy speech detector", error)
        return None
    return model.eval()


def _quiet_gain(audio: np.ndarray) -> float:
    """The gain that lifts quiet audio to a peak of ``MIN_PEAK_DBFS`` (at most ``MAX_GAIN_DB``);
    1 for audio already that loud. Silero's probabilities fall with the level: espeak-ng speech
    at -30 dBFS peak scores below 0.5, at -20 above 0.9, while the non-speech set stays below
    0.1 when lifted."""
    peak = float(np.abs(audio).max()) if len(audio) else 0.0
    floor = 10 ** (MIN_PEAK_DBFS / 20)
    if peak == 0.0 or peak >= floor:
        return 1.0
    return min(floor / peak, 10 ** (MAX_GAIN_DB / 20))


def speech_probs(audio: np.ndarray) -> np.ndarray | None:
    """Speech probability of each 32 ms chunk [ceil(len(audio) / CHUNK_SAMPLES)], the last chunk
    zero-padded, quiet audio lifted first (``_quiet_gain``); None where the model cannot load."""
    import torch

    model = load_model()
    if model is None:
        return None
    n_chunks = -(-len(audio) // CHUNK_SAMPLES)
    if n_chunks == 0:
        return np.zeros(0, dtype=np.float32)
    padded = np.zeros(n_chunks * CHUNK_SAMPLES, dtype=np.float32)  # [chunks * 512]
    padded[: len(audio)] = audio * _quiet_gain(audio)
    with _LOCK, torch.no_grad():
        probs = model.audio_forward(torch.from_numpy(padded), SAMPLE_RATE)  # [1, chunks]
    return probs[0].float().numpy()


def regions_from_probs(
    probs: np.ndarray, n_samples: int, options: SileroOptions = SileroOptions()
) -> list[Region]:
    """Speech regions (start, end) in samples, unpadded, from per-chunk probabilities."""
    ms = SAMPLE_RATE // 1000
    min_speech, min_silence = options.min_speech_ms * ms, options.min_silence_ms * ms
    neg_threshold = max(options.vad_threshold - NEG_THRESHOLD_OFFSET, 0.01)
    regions: list[Region] = []
    triggered, start, silence_start = False, 0, 0
    for i, p in enumerate(probs):
        sample = i * CHUNK_SAMPLES
        if p >= options.vad_threshold:
            silence_start = 0
            if not triggered:
                triggered, start = True, sample
            continue
        if triggered and p < neg_threshold:
            silence_start = silence_start or sample
            if sample - silence_start >= min_silence:
                if silence_start - start > min_speech:
                    regions.append((start, silence_start))
                triggered, silence_start = False, 0
    if triggered and n_samples - start > min_speech:
        regions.append((start, n_samples))
    return regions


def pad_regions(regions: list[Region], n_samples: int, pad_ms: int) -> list[Region]:
    """Regions widened by pad_ms each side; neighbours closer than two pads meet halfway."""
    pad = pad_ms * SAMPLE_RATE // 1000
    starts = [max(0, s - pad) for s, _ in regions]
    ends = [min(n_samples, e + pad) for _, e in regions]
    for i in range(len(regions) - 1):
        gap = regions[i + 1][0] - regions[i][1]
        if gap < 2 * pad:
            ends[i] = regions[i][1] + gap // 2
            starts[i + 1] = ends[i]
    return list(zip(starts, ends, strict=True))


def speech_regions(audio: np.ndarray, options: SileroOptions = SileroOptions()) -> list[Region]:
    """Padded speech regions of the audio in samples; where the model cannot load, the energy
    detector's speech (one region from its first to its last speech frame)."""
    probs = speech_probs(audio)
    if probs is None:
        if not vad.has_speech(audio):
            return []
        first, last = vad.speech_bounds(audio)  # type: ignore[misc]
        frame = vad.VadOptions().frame_samples
        return [(first * frame, last * frame)]
    regions = regions_from_probs(probs, len(audio), options)
    return pad_regions(regions, len(audio), options.speech_pad_ms)


def has_speech(audio: np.ndarray, options: SileroOptions = SileroOptions()) -> bool:
    """True if the detector finds at least one speech region."""
    return bool(speech_regions(audio, options))


def merge_regions(
    audio: np.ndarray, regions: list[Region], max_seconds: float, pack: bool = True
) -> list[Region]:
    """Speech regions -> windows (start, end) of at most max_seconds, each from the start of its
    first region to the end of its last, cut in the longest pause within the last half of the
    span (``MIN_WINDOW_FILL``). A region longer than the span is cut by ``vad.split_points``.
    Without ``pack`` every region (or piece of one) is a window of its own."""
    max_samples = int(max_seconds * SAMPLE_RATE)
    if max_samples <= 0:
        raise ValueError(f"max_seconds must be positive, got {max_seconds}")
    pieces = [
        (start + a, start + b)
        for start, end in regions
        for a, b in vad.split_points(audio[start:end], max_seconds)
    ]
    if not pack:
        return pieces
    windows, i = [], 0
    while i < len(pieces):
        start = pieces[i][0]
        last = i  # the last piece that fits in this window
        while last + 1 < len(pieces) and pieces[last + 1][1] - start <= max_samples:
            last += 1
        if last + 1 < len(pieces) and last > i:  # more follows: cut in the longest pause
            fill = start + MIN_WINDOW_FILL * max_samples
            cuts = [k for k in range(i, last + 1) if pieces[k][1] >= fill] or [last]
            last = max(cuts, key=lambda k: (pieces[k + 1][0] - pieces[k][1], k))
        windows.append((start, pieces[last][1]))
        i = last + 1
    return windows


def split_points(
    audio: np.ndarray,
    max_seconds: float,
    options: SileroOptions = SileroOptions(),
    pack: bool = True,
) -> list[Region]:
    """Windows of at most max_seconds holding the audio's speech (silence between them is left
    out), regions packed together unless ``pack`` is off; [] when the audio holds no speech."""
    return merge_regions(audio, speech_regions(audio, options), max_seconds, pack)
