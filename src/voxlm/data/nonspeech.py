"""Audio with no speech in it, on which a recogniser should write nothing.

Hallucination shows where there is nothing to hear: a decoder-only LLM asked to transcribe
silence, hum, noise or music tends to write something anyway. These five signals are the ones
the speech-detector tests and the evaluation report's words-per-minute measure use, so both
speak of the same sounds. Every signal is deterministic (a fixed seed).
"""

from __future__ import annotations

import numpy as np

from voxlm.audio import SAMPLE_RATE

NON_SPEECH_KINDS = ("silence", "hum", "white", "pink", "music")


def at_dbfs(x: np.ndarray, db: float) -> np.ndarray:
    """x scaled to an RMS of ``db`` dBFS (float32); x must not be all zeros."""
    rms = np.sqrt(np.mean(np.square(x, dtype=np.float64)))
    if rms == 0:
        raise ValueError("cannot scale digital silence to a level: its RMS is 0")
    return (x / rms * 10 ** (db / 20)).astype(np.float32)


def non_speech(seconds: float = 60.0) -> dict[str, np.ndarray]:
    """Digital silence, mains hum, white and pink noise, and chords over a 120 bpm beat.

    Levels are those of quiet rooms and background music: hum at -40 dBFS RMS (50 Hz and four
    harmonics), white and pink (1/f power) noise at -30, and the music at -20: a major, a minor
    and another major triad, two seconds each, under a decaying pulse every 0.5 s with a 60 Hz
    kick. Keys are ``NON_SPEECH_KINDS``; each value is ``seconds`` of 16 kHz float32 audio.
    """
    if seconds <= 0:
        raise ValueError(f"non_speech: seconds must be > 0, got {seconds}")
    rng = np.random.default_rng(0)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    hum = sum(np.sin(2 * np.pi * 50 * h * t) / h for h in range(1, 6))  # 50 Hz + harmonics
    spectrum = np.fft.rfft(rng.standard_normal(n))
    pink = np.fft.irfft(spectrum / np.sqrt(np.maximum(np.arange(len(spectrum)), 1)), n)  # 1/f
    chords = np.array([(261.6, 329.6, 392.0), (220.0, 261.6, 329.6), (174.6, 220.0, 261.6)])
    chord = chords[(t // 2).astype(int) % 3]  # [n, 3] Hz, a chord every 2 s
    tones = sum(np.sin(2 * np.pi * chord[:, k] * t) for k in range(3))
    beat = np.exp(-20 * (t % 0.5))  # a decaying pulse every 0.5 s
    music = tones * (0.5 + 0.5 * beat) + 2 * beat * np.sin(2 * np.pi * 60 * t)
    return {
        "silence": np.zeros(n, dtype=np.float32),
        "hum": at_dbfs(hum, -40),
        "white": at_dbfs(rng.standard_normal(n), -30),
        "pink": at_dbfs(pink, -30),
        "music": at_dbfs(music, -20),
    }
