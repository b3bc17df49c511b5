"""Room and noise effects for synthetic speech, drawn per utterance; word timings unchanged.

espeak-ng speaks in a clean, dry voice; a model trained only on that meets any recording as a
new condition. A share of clips gets a synthetic room (exponentially decaying noise as the
impulse response) and a share additive white or pink noise at a random SNR.
"""

from __future__ import annotations

import numpy as np

from voxlm.audio import SAMPLE_RATE


def augment(
    audio: np.ndarray,
    rng: np.random.Generator,
    *,
    reverb_prob: float,
    reverb_rt60_s: tuple[float, float],
    noise_prob: float,
    noise_snr_db: tuple[float, float],
) -> np.ndarray:
    """Optional room reverb then additive white/pink noise at a random SNR; timings unchanged."""
    if rng.random() < reverb_prob:
        audio = _reverb(audio, rng, rng.uniform(*reverb_rt60_s))
    if rng.random() < noise_prob:
        audio = _add_noise(audio, rng, noise_snr_db)
    return audio


def _reverb(audio: np.ndarray, rng: np.random.Generator, rt60: float) -> np.ndarray:
    """A room with reverberation time `rt60` seconds, at the dry signal's peak level."""
    t = np.arange(int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
    ir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    ir[0] = 1.0  # direct path at delay 0, so onsets do not move
    size = 1 << (len(audio) + len(ir) - 2).bit_length()  # a power of two: fast FFTs
    wet = np.fft.irfft(np.fft.rfft(audio, size) * np.fft.rfft(ir, size), size)
    return wet[: len(audio)] * (np.abs(audio).max() / (np.abs(wet).max() + 1e-9))


def _add_noise(
    audio: np.ndarray, rng: np.random.Generator, snr_db_range: tuple[float, float]
) -> np.ndarray:
    """White or (half the time) pink noise at an SNR drawn from `snr_db_range`."""
    size = 1 << (len(audio) - 1).bit_length()
    noise = rng.standard_normal(size)
    if rng.random() < 0.5:  # pink: 1/f power
        spectrum = np.fft.rfft(noise)
        spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
        noise = np.fft.irfft(spectrum, size)
    noise = noise[: len(audio)]
    snr_db = rng.uniform(*snr_db_range)
    signal_power = np.mean(audio**2)
    noise *= np.sqrt(signal_power / (np.mean(noise**2) + 1e-12) / 10 ** (snr_db / 10))
    return audio + noise
