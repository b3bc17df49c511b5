import itertools
import json
import logging
import subprocess
import sys

import numpy as np
import pytest
from conftest import REAL_SPEECH, real_speech_rows, tiny_config

from voxlm import silero, vad
from voxlm.audio import SAMPLE_RATE, load_audio
from voxlm.data.nonspeech import at_dbfs, non_speech
from voxlm.decoding import DecodingOptions
from voxlm.model import VoxLM
from voxlm.results import STOP_NO_SPEECH
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


# ---- Silero VAD -----------------------------------------------------------------------------------
def test_silero_no_words_on_non_speech():
    model = VoxLM.from_config(tiny_config()).eval()
    signals = non_speech()
    options = DecodingOptions(vad="silero")
    results = model.transcribe(list(signals.values()), options=options, sample_rate=SAMPLE_RATE)
    for name, result in zip(signals, results, strict=True):
        assert result.words == () and result.stop_reason == STOP_NO_SPEECH, name
        assert result.audio_duration == 60.0


def test_silero_detects_real_speech():
    rows = real_speech_rows()
    quiet = []
    for row in rows:
        audio = load_audio(str(REAL_SPEECH / row["audio_filepath"]))
        assert silero.has_speech(audio), row["id"]
        quiet.append(silero.has_speech(at_dbfs(audio, -40)))
    assert all(quiet)


def test_silero_detects_quiet_synthetic_speech(synth_corpus):
    rows = [json.loads(line) for line in (synth_corpus / "test.jsonl").read_text().splitlines()]
    for row in rows:
        audio = load_audio(str(synth_corpus / row["audio_filepath"]))
        quiet = (audio * 10 ** (-30 / 20) / np.abs(audio).max()).astype(np.float32)  # peak -30
        assert silero.has_speech(quiet), row["audio_filepath"]


def test_quiet_audio_is_lifted_before_silero_scores_it(speech):
    quiet = (speech * 10 ** (-30 / 20) / np.abs(speech).max()).astype(np.float32)
    assert 20 * np.log10(silero._quiet_gain(quiet)) == pytest.approx(10.0, abs=1e-4)  # to -20
    assert silero._quiet_gain(speech) == 1.0  # loud enough already
    assert silero._quiet_gain(np.zeros(100, dtype=np.float32)) == 1.0  # digital silence
    faint = np.full(100, 1e-6, dtype=np.float32)  # -120 dBFS: lifted by at most 30 dB
    assert 20 * np.log10(silero._quiet_gain(faint)) == pytest.approx(silero.MAX_GAIN_DB)
    lifted, loud = silero.speech_probs(quiet), silero.speech_probs(speech)
    assert lifted.max() > 0.9 and abs(lifted.max() - loud.max()) < 0.1


def test_regions_from_probs_and_padding():
    chunk = silero.CHUNK_SAMPLES  # 32 ms
    probs = np.array([0.1] * 5 + [0.9] * 10 + [0.1] * 2 + [0.9] * 10 + [0.1] * 10 + [0.9] * 2)
    options = silero.SileroOptions(min_speech_ms=100, min_silence_ms=100)
    # A 64 ms dip does not end a region; a 2-chunk (64 ms) burst is too short to be one.
    regions = silero.regions_from_probs(probs, len(probs) * chunk, options)
    assert regions == [(5 * chunk, 27 * chunk)]
    padded = silero.pad_regions([(1000, 2000), (2100, 5000)], 5200, pad_ms=10)  # 160 samples
    assert padded == [(840, 2050), (2050, 5160)]


def test_merge_regions_cuts_in_the_longest_pause():
    s = SAMPLE_RATE
    audio = np.zeros(40 * s, dtype=np.float32)
    regions = [
        (0, 2 * s),
        (4 * s, 6 * s),
        (6 * s + s // 2, 7 * s),
        (8 * s, 9 * s),
        (12 * s, 14 * s),
    ]
    # With 10 s windows: pauses ending the first half (at 6 s, 7 s, 9 s) are 0.5, 1 and 3 s.
    assert silero.merge_regions(audio, regions, 10.0) == [(0, 9 * s), (12 * s, 14 * s)]
    assert silero.merge_regions(audio, [(0, 25 * s)], 10.0)[-1][1] == 25 * s  # a long region
    assert all(e - b <= 10 * s for b, e in silero.merge_regions(audio, [(0, 25 * s)], 10.0))
    # Unpacked, each region is a window of its own; a long one is still cut to the span.
    assert silero.merge_regions(audio, regions, 10.0, pack=False) == regions
    pieces = silero.merge_regions(audio, [(0, 25 * s)], 10.0, pack=False)
    assert len(pieces) >= 3 and all(e - b <= 10 * s for b, e in pieces)


def test_windows_follow_the_model_config_unless_the_options_say_otherwise(speech):
    from dataclasses import replace

    from voxlm.model import VoxLM
    from voxlm.transcribe import speech_windows

    model = VoxLM.from_config("voxlm-tiny")
    pause = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    audio = np.concatenate([speech, pause, speech, pause, speech])
    assert model.window_seconds == 8 and not model.config.pack_windows  # voxlm-tiny's recipe
    alone = speech_windows(0, audio, model, DecodingOptions())
    assert len(alone) == 3  # one window per utterance
    packed = speech_windows(0, audio, model, DecodingOptions(pack_windows=True))
    assert len(packed) < 3 and all(len(w.audio) <= 8 * SAMPLE_RATE for w in packed)
    model.config = replace(model.config, window_seconds=None, pack_windows=True)
    assert model.window_seconds == model.encoder.max_seconds == 30
    assert len(speech_windows(0, audio, model, DecodingOptions())) == 1
    with pytest.raises(ValueError, match="window_seconds"):
        DecodingOptions(window_seconds=0)


def test_long_audio_is_cut_in_pauses(speech):
    """Speech with 0.3-2 s pauses, about 60 s: windows of at most 10 s hold every utterance
    whole, and nothing else."""
    rng = np.random.default_rng(1)
    parts, spans, at = [], [], 0
    bounds = vad.speech_bounds(speech)
    frame = vad.VadOptions().frame_samples
    while at < 60 * SAMPLE_RATE:
        pause = np.zeros(int(rng.uniform(0.3, 2.0) * SAMPLE_RATE), dtype=np.float32)
        parts += [pause, speech]
        at += len(pause)
        spans.append((at + bounds[0] * frame, at + bounds[1] * frame))
        at += len(speech)
    audio = np.concatenate(parts)
    windows = silero.split_points(audio, 10.0)
    assert all(end - start <= 10 * SAMPLE_RATE for start, end in windows)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(windows))
    for a, b in spans:
        assert any(start <= a and b <= end for start, end in windows), (a, b)


@pytest.fixture
def silero_missing(monkeypatch):
    def missing():
        raise ModuleNotFoundError("silero-vad is not installed")

    monkeypatch.setattr(silero, "model_path", missing)
    silero.load_model.cache_clear()
    yield
    silero.load_model.cache_clear()


def test_fallback_to_energy_with_one_warning(silero_missing, speech, caplog):
    with caplog.at_level(logging.WARNING, logger="voxlm"):
        assert silero.has_speech(speech)
        assert not silero.has_speech(np.zeros(SAMPLE_RATE, dtype=np.float32))
        windows = silero.split_points(np.tile(speech, 20), 10.0)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "energy" in warnings[0].getMessage()
    assert windows and all(end - start <= 10 * SAMPLE_RATE for start, end in windows)


def test_bad_silero_options():
    with pytest.raises(ValueError, match="vad_threshold"):
        DecodingOptions(vad_threshold=1.5)
    with pytest.raises(ValueError, match="speech_pad_ms"):
        DecodingOptions(speech_pad_ms=-1)
    with pytest.raises(ValueError, match="vad"):
        DecodingOptions(vad="webrtc")
