"""Audio in: decode any format to float32 mono 16 kHz, and Whisper's log-mel spectrogram.

Every rate in VoxLM derives from the constants below. Decoding tries libsndfile (wav, flac,
ogg, mp3) first and falls back to PyAV (m4a/mp4, webm/opus, ...), so no system ffmpeg is needed.
Resampling uses libsoxr, the reference-quality resampler behind sox.
"""

from __future__ import annotations

import functools
import io
import os
import re
from typing import BinaryIO

import av
import numpy as np
import soundfile as sf
import soxr
import torch
from transformers.audio_utils import mel_filter_bank

SAMPLE_RATE = 16_000  # samples per second
N_FFT = 400  # samples per STFT window (25 ms)
HOP_LENGTH = 160  # samples between STFT frames (10 ms)
CHUNK_LENGTH = 30  # seconds in one encoder window
N_SAMPLES = CHUNK_LENGTH * SAMPLE_RATE  # 480000 samples in a 30-second chunk
N_FRAMES = N_SAMPLES // HOP_LENGTH  # 3000 mel frames in a 30-second chunk
MEL_FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 100 mel frames per second (10 ms each)
# The log-mel pads each end by half a window by reflection, which needs more samples than that.
MIN_SAMPLES = N_FFT // 2 + 1  # 201 samples at 16 kHz (12.6 ms)

# Decoders legitimately return a little less than a header declares (codec priming and
# padding, under 0.1 s for AAC, MP3 and Opus); a larger shortfall means a truncated file.
_TRUNCATION_TOLERANCE_S = 0.25
# libsndfile silently shortens a WAV whose data chunk runs past the end of the file and only
# notes it in its log, e.g. "data : 128000 (should be 63978)". 0 and 0xFFFFFFFF mark streams
# whose writer could not know the length: those are not truncated.
_WAV_SHORT_DATA = re.compile(r"data\s*:\s*(\d+)\s*\(should be (\d+)\)")
_WAV_UNKNOWN_LENGTHS = (0, 0xFFFFFFFF)

AudioSource = str | os.PathLike | bytes | bytearray | BinaryIO | np.ndarray | torch.Tensor


def load_audio(source: AudioSource, sample_rate: int | None = None) -> np.ndarray:
    """Decode `source` to float32 mono samples at SAMPLE_RATE, shape [samples].

    source: a path, the bytes of an encoded file, a binary file object, or an array/tensor of
    samples ([samples], [channels, samples] or [samples, channels]; the smaller dimension of a
    2-D array is taken as channels; integer samples are scaled to [-1, 1]).
    sample_rate: the rate of an array source (required for arrays). Encoded audio carries its
    own rate in its header, so it is ignored for paths, bytes and file objects.
    Channels are averaged; other rates are resampled. Raises ValueError naming the source for
    empty, corrupt, truncated or non-audio input, for audio shorter than MIN_SAMPLES once at
    SAMPLE_RATE (too short for a spectrogram) and for NaN/Inf samples.
    """
    if isinstance(source, (np.ndarray, torch.Tensor)):
        if sample_rate is None:
            raise ValueError("<array>: sample_rate is required when audio is given as an array")
        audio, rate = _array_to_mono(source), sample_rate
        name = "<array>"
    else:
        name, data = _open_source(source)
        audio, rate = _decode(data, name)
    if rate <= 0:
        raise ValueError(f"{name}: sample rate must be positive, got {rate}")
    if audio.size == 0:
        raise ValueError(f"{name}: no audio samples")
    if not np.isfinite(audio).all():
        raise ValueError(f"{name}: audio contains NaN or Inf samples")
    if rate != SAMPLE_RATE:
        audio = soxr.resample(audio, rate, SAMPLE_RATE)
    if len(audio) < MIN_SAMPLES:
        raise ValueError(
            f"{name}: too short to transcribe: {len(audio)} samples at {SAMPLE_RATE} Hz, "
            f"expected at least {MIN_SAMPLES} ({1000 * MIN_SAMPLES / SAMPLE_RATE:.1f} ms)"
        )
    return np.ascontiguousarray(audio, dtype=np.float32)


def _array_to_mono(array: np.ndarray | torch.Tensor) -> np.ndarray:
    """Samples of a 1-D or 2-D array as float32 mono [samples]."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu()
        array = (array.float() if array.is_floating_point() else array).numpy()
    if array.ndim not in (1, 2):
        raise ValueError(f"<array>: expected [samples] or 2-D channels, got shape {array.shape}")
    if np.issubdtype(array.dtype, np.signedinteger):
        array = array / -float(np.iinfo(array.dtype).min)  # int16 -32768 -> -1.0
    elif np.issubdtype(array.dtype, np.unsignedinteger):
        middle = (float(np.iinfo(array.dtype).max) + 1) / 2  # uint8 128 -> 0.0
        array = (array - middle) / middle
    elif not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"<array>: expected float or integer samples, got dtype {array.dtype}")
    if array.ndim == 2:
        channel_axis = int(np.argmin(array.shape))  # ties: [channels, samples]
        array = array.mean(axis=channel_axis)  # [samples]
    return np.asarray(array, dtype=np.float32)


def _open_source(source: str | os.PathLike | bytes | bytearray | BinaryIO) -> tuple[str, object]:
    """(name for messages, path or seekable buffer) for an encoded source."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such audio file")
        if os.path.getsize(path) == 0:
            raise ValueError(f"{path}: empty file")
        return path, path
    if isinstance(source, (bytes, bytearray, memoryview)):
        name, data = "<bytes>", bytes(source)
    elif hasattr(source, "read"):
        name, data = "<file object>", source.read()
        if not isinstance(data, (bytes, bytearray)):
            raise ValueError(f"{name}: expected a binary file object, read {type(data).__name__}")
    else:
        raise TypeError(f"cannot load audio from {type(source).__name__}")
    if len(data) == 0:
        raise ValueError(f"{name}: empty input")
    return name, io.BytesIO(data)


def _decode(data: object, name: str) -> tuple[np.ndarray, int]:
    """(mono float32 [samples], rate): libsndfile first, PyAV for what it cannot read."""
    try:
        return _decode_soundfile(data)
    except sf.SoundFileError as error:
        soundfile_error = getattr(error, "error_string", error)  # without the buffer's repr
    except _BadAudio as error:
        raise ValueError(f"{name}: {error}") from None
    if isinstance(data, io.BytesIO):
        data.seek(0)
    try:
        return _decode_av(data)
    except (_BadAudio, av.FFmpegError, EOFError) as error:
        raise ValueError(
            f"{name}: not a readable audio file (corrupt, truncated or not audio): "
            f"libsndfile: {soundfile_error}; PyAV: {error}"
        ) from None


class _BadAudio(Exception):
    """A container that opened but holds unusable audio: truncated, or no audio stream."""


def _check_complete(decoded_seconds: float, declared_seconds: float | None) -> None:
    if declared_seconds and decoded_seconds < declared_seconds - _TRUNCATION_TOLERANCE_S:
        raise _BadAudio(
            f"truncated: decoded {decoded_seconds:.2f} s of the {declared_seconds:.2f} s "
            "its header declares"
        )


def _decode_soundfile(data: object) -> tuple[np.ndarray, int]:
    with sf.SoundFile(data) as file:
        audio = file.read(dtype="float32", always_2d=True)  # [samples, channels]
        rate, declared_frames, log = file.samplerate, file.frames, file.extra_info
    short = _WAV_SHORT_DATA.search(log)
    if short and int(short.group(1)) not in _WAV_UNKNOWN_LENGTHS:
        raise _BadAudio(f"truncated: data chunk declares {short.group(1)} bytes, holds fewer")
    _check_complete(len(audio) / rate, declared_frames / rate)
    return audio.mean(axis=1), rate  # [samples]


def _decode_av(data: object) -> tuple[np.ndarray, int]:
    with av.open(data, metadata_errors="ignore") as container:
        if not container.streams.audio:
            raise _BadAudio("no audio stream")
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        # Planar float keeps channels apart so that they are averaged like libsndfile's.
        resampler = av.AudioResampler(format="fltp", rate=rate)
        chunks = [
            out.to_ndarray()  # [channels, samples]
            for frame in container.decode(stream)
            for out in resampler.resample(frame)
        ]
        declared = container.duration / av.time_base if container.duration else None
    if not chunks:
        return np.zeros(0, dtype=np.float32), rate
    audio = np.concatenate(chunks, axis=1).mean(axis=0)  # [samples]
    _check_complete(len(audio) / rate, declared)
    return audio, rate


@functools.lru_cache(maxsize=8)
def _mel_filters(n_mels: int, device: torch.device) -> torch.Tensor:
    """Slaney-scale mel filters [n_mels, N_FFT // 2 + 1] on ``device``, as Whisper builds them
    (cached per device: a copy to the GPU on every call costs more than the product)."""
    filters = mel_filter_bank(
        num_frequency_bins=1 + N_FFT // 2,
        num_mel_filters=n_mels,
        min_frequency=0.0,
        max_frequency=8000.0,
        sampling_rate=SAMPLE_RATE,
        norm="slaney",
        mel_scale="slaney",
    )  # [freq, n_mels]
    return torch.from_numpy(filters.T.astype(np.float32)).to(device)  # [n_mels, freq]


def log_mel_spectrogram(
    audio: np.ndarray | torch.Tensor,
    n_mels: int = 80,
    lengths: torch.Tensor | np.ndarray | list[int] | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Whisper's log-mel spectrogram of 16 kHz audio, batched.

    audio: [S] or [B, S] samples at SAMPLE_RATE. lengths: valid samples per row [B]; when
    given, each row's dynamic-range floor (max - 8) comes from its valid frames only, so
    right-padding a clip leaves its valid frames unchanged.
    Returns [n_mels, T] or [B, n_mels, T], T = S // HOP_LENGTH (Whisper drops the last frame).
    Computed on `device`, else on the audio tensor's device.
    """
    x = (
        audio
        if isinstance(audio, torch.Tensor)
        else torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    )
    x = x.to(device=device if device is not None else x.device, dtype=torch.float32)
    single = x.dim() == 1
    if single:
        x = x[None]  # [1, S]
    if x.dim() != 2:
        raise ValueError(f"audio must be [samples] or [batch, samples], got {tuple(x.shape)}")
    if x.shape[1] <= N_FFT // 2:
        raise ValueError(f"audio needs more than {N_FFT // 2} samples, got {x.shape[1]}")
    window = torch.hann_window(N_FFT, device=x.device)
    stft = torch.stft(x, N_FFT, HOP_LENGTH, window=window, return_complex=True)[..., :-1]
    # |X|^2 as hypot(re, im)^2, and in place from here on: the complex abs() ** 2 took longer
    # than the STFT itself on the CPU. hypot is the complex abs's own formula, so the result is
    # bit for bit the same; re^2 + im^2, faster still, differs in the last bit, and trained
    # models amplify that (tests/test_golden.py).
    power = torch.hypot(stft.real, stft.imag).square_()  # [B, F, T]
    mel = _mel_filters(n_mels, x.device) @ power  # [B, n_mels, T]
    log_spec = mel.clamp_(min=1e-10).log10_()
    frame_peaks = log_spec.amax(dim=1)  # [B, T]
    if lengths is not None:
        lengths = torch.as_tensor(lengths, device=x.device).reshape(-1)  # [B]
        if lengths.numel() != x.shape[0]:
            raise ValueError(f"lengths has {lengths.numel()} entries for {x.shape[0]} rows")
        valid = (lengths // HOP_LENGTH).clamp(min=1)  # [B] valid frames
        is_pad = torch.arange(log_spec.shape[-1], device=x.device) >= valid[:, None]  # [B, T]
        frame_peaks = frame_peaks.masked_fill(is_pad, float("-inf"))
    peak = frame_peaks.amax(dim=1)[:, None, None]  # [B, 1, 1]
    log_spec = log_spec.clamp_(min=peak - 8.0).add_(4.0).div_(4.0)
    return log_spec[0] if single else log_spec
