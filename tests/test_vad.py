import itertools
import subprocess
import sys

import numpy as np
import pytest

from voxlm.audio import SAMPLE_RATE, load_audio
from voxlm.vad import VadOptions, has_speech, speech_mask, split_points

# espeak-ng keeps its synthesis callback in process-global state, so it runs in a child process
# to leave any other user of the library in the test session undisturbed.
_ESPEAK = r"""
import ctypes, sys
import espeakng_loader
lib = ctypes.CDLL(espeakng_loader.get_library_path())
rate = lib.espeak_Initialize(1, 0, espeakng_loader.get_data_path().encode(), 0)
chunks = []
Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
@Callback
def collect(wav, n, events):
    chunks.append(ctypes.string_at(wav, 2 * n) if n > 0 else b"")
    return 0
lib.espeak_SetSynthCallback(collect)
lib.espeak_SetVoiceByName(b"en")
text = sys.argv[1].encode()
lib.espeak_Synth(text, len(text) + 1, 0, 1, 0, 0, None, None)
lib.espeak_Synchronize()
sys.stdout.buffer.write(rate.to_bytes(4, "little") + b"".join(chunks))
"""


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """About 2.5 s of espeak-ng English at 16 kHz, peak near -2 dBFS."""
    out = subprocess.run(
        [sys.executable, "-c", _ESPEAK, "the quick brown fox jumps over the lazy dog"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    rate = int.from_bytes(out[:4], "little")  # 22050 Hz
    return load_audio(np.frombuffer(out[4:], dtype=np.int16), sample_rate=rate)


def noise(seconds: float, std: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (std * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)


def test_silence_and_noise_have_no_speech():
    assert not has_speech(np.zeros(2 * SAMPLE_RATE, dtype=np.float32))
    assert not has_speech(noise(2.0, 1e-4))  # -80 dBFS, under the energy floor
    assert not has_speech(noise(2.0, 0.1))  # -20 dBFS white noise: rejected by flatness
    assert not speech_mask(noise(2.0, 0.1)).any()


def test_speech_is_speech(speech):
    mask = speech_mask(speech)
    assert len(mask) == len(speech) // VadOptions().frame_samples
    assert mask.mean() > 0.5
    assert has_speech(speech)
    assert has_speech(speech + noise(len(speech) / SAMPLE_RATE, 0.003))  # 30 dB SNR


def test_speech_mask_marks_the_gap(speech):
    gap = np.zeros(SAMPLE_RATE, dtype=np.float32)
    mask = speech_mask(np.concatenate([speech, gap, speech]))
    frame = VadOptions().frame_samples
    gap_frames = mask[len(speech) // frame + 1 : (len(speech) + len(gap)) // frame - 1]
    assert not gap_frames.any()


def test_min_speech_seconds(speech):
    short = speech[: int(0.05 * SAMPLE_RATE)]
    assert not has_speech(short, VadOptions(min_speech_seconds=0.1))


def test_split_short_and_empty():
    assert split_points(np.zeros(0, dtype=np.float32)) == []
    assert split_points(noise(0.001, 0.1)) == [(0, 16)]  # shorter than one VAD frame
    assert split_points(noise(10.0, 0.1)) == [(0, 10 * SAMPLE_RATE)]
    assert split_points(noise(30.0, 0.1)) == [(0, 30 * SAMPLE_RATE)]


def test_split_cuts_in_the_pause(speech):
    """Speech up to 8.2 s, a 0.6 s pause, more speech: with 10 s windows the cut is in the pause."""
    before = np.tile(speech, 4)[: int(8.2 * SAMPLE_RATE)]
    pause = noise(0.6, 1e-4)
    after = np.tile(speech, 6)
    audio = np.concatenate([before, pause, after])
    windows = split_points(audio, max_seconds=10.0)
    assert windows[0][0] == 0 and windows[-1][1] == len(audio)
    assert all(end - start <= 10 * SAMPLE_RATE for start, end in windows)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))  # contiguous, no gaps
    assert len(before) < windows[0][1] < len(before) + len(pause)


def test_split_long_noise_covers_everything():
    audio = noise(95.0, 0.1)
    windows = split_points(audio, max_seconds=30.0)
    assert len(windows) == 4
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))
    assert all(0 < end - start <= 30 * SAMPLE_RATE for start, end in windows)
    assert windows[-1][1] == len(audio)


def test_bad_options():
    with pytest.raises(ValueError, match="max_flatness"):
        VadOptions(max_flatness=0.0)
    with pytest.raises(ValueError, match="frame_seconds"):
        VadOptions(frame_seconds=0.0)
    with pytest.raises(ValueError, match="max_seconds"):
        split_points(noise(1.0, 0.1), max_seconds=0.0)
