import io

import av
import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import WhisperFeatureExtractor

from voxlm.audio import (
    CHUNK_LENGTH,
    HOP_LENGTH,
    MEL_FRAMES_PER_SECOND,
    MIN_SAMPLES,
    N_FFT,
    N_FRAMES,
    N_SAMPLES,
    SAMPLE_RATE,
    load_audio,
    log_mel_spectrogram,
)


def sine(freq: float, seconds: float, rate: int, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_hz(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.argmax(spectrum) * SAMPLE_RATE / len(audio))


def encode_soundfile(audio: np.ndarray, rate: int, fmt: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format=fmt)
    return buffer.getvalue()


def encode_av(audio: np.ndarray, rate: int, container: str, codec: str) -> bytes:
    """Mono float32 samples encoded with PyAV (for formats libsndfile cannot write)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as output:
        stream = output.add_stream(codec, rate=rate, layout="mono")
        codec_format = stream.codec_context.codec.audio_formats[0].name
        frame = av.AudioFrame.from_ndarray(audio[None], format="flt", layout="mono")
        frame.sample_rate = rate
        resampler = av.AudioResampler(format=codec_format, layout="mono", rate=rate)
        for converted in resampler.resample(frame) + resampler.resample(None):
            output.mux(stream.encode(converted))
        output.mux(stream.encode(None))
    return buffer.getvalue()


def test_rate_constants():
    assert (SAMPLE_RATE, N_FFT, HOP_LENGTH, CHUNK_LENGTH) == (16_000, 400, 160, 30)
    assert (N_SAMPLES, N_FRAMES, MEL_FRAMES_PER_SECOND) == (480_000, 3000, 100)


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG", "MP3"])
def test_load_soundfile_formats_stereo_44k(fmt):
    left = sine(440, 1.0, 44_100)
    stereo = np.stack([left, left], axis=1)  # [samples, channels]
    audio = load_audio(encode_soundfile(stereo, 44_100, fmt))
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - SAMPLE_RATE) <= 0.06 * SAMPLE_RATE  # mp3 adds codec padding
    assert abs(dominant_hz(audio) - 440) < 2
    assert 0.2 < np.abs(audio).max() < 0.4


@pytest.mark.parametrize(("container", "codec"), [("mp4", "aac"), ("webm", "libopus")])
def test_load_pyav_formats(container, codec):
    audio = load_audio(encode_av(sine(440, 1.0, 48_000), 48_000, container, codec))
    assert abs(len(audio) - SAMPLE_RATE) <= 0.06 * SAMPLE_RATE
    assert abs(dominant_hz(audio) - 440) < 2


def test_load_sources_agree(tmp_path):
    data = encode_soundfile(sine(440, 0.5, SAMPLE_RATE), SAMPLE_RATE, "FLAC")
    path = tmp_path / "clip.flac"
    path.write_bytes(data)
    expected = load_audio(path)
    assert np.array_equal(load_audio(str(path)), expected)
    assert np.array_equal(load_audio(data), expected)
    assert np.array_equal(load_audio(bytearray(data)), expected)
    with open(path, "rb") as file:
        assert np.array_equal(load_audio(file), expected)


def test_resampling_matches_analytic_sine():
    audio = load_audio(sine(440, 1.0, 44_100), sample_rate=44_100)
    expected = sine(440, 1.0, SAMPLE_RATE)
    assert len(audio) == SAMPLE_RATE
    assert np.abs(audio - expected)[100:-100].max() < 1e-3  # away from the edges


def test_arrays_channels_and_integers():
    mono = sine(300, 0.25, SAMPLE_RATE)
    stereo = np.stack([mono, mono])  # [channels, samples]
    assert np.allclose(load_audio(stereo, SAMPLE_RATE), mono)
    assert np.allclose(load_audio(stereo.T, SAMPLE_RATE), mono)  # [samples, channels]
    assert np.allclose(load_audio(torch.from_numpy(stereo), SAMPLE_RATE), mono)
    int16 = (mono * 32768).astype(np.int16)
    assert np.abs(load_audio(int16, SAMPLE_RATE) - mono).max() < 1e-4
    assert np.allclose(load_audio(torch.from_numpy(int16), SAMPLE_RATE), int16 / 32768)
    uint8 = np.tile(np.array([0, 128, 255], dtype=np.uint8), MIN_SAMPLES)
    assert np.allclose(load_audio(uint8, SAMPLE_RATE)[:3], [-1.0, 0.0, 127 / 128])


def test_array_needs_sample_rate():
    with pytest.raises(ValueError, match="<array>.*sample_rate"):
        load_audio(np.zeros(100, dtype=np.float32))


def test_bad_arrays():
    with pytest.raises(ValueError, match="<array>.*no audio"):
        load_audio(np.zeros(0, dtype=np.float32), SAMPLE_RATE)
    with pytest.raises(ValueError, match="<array>.*NaN"):
        load_audio(np.array([0.0, np.nan], dtype=np.float32), SAMPLE_RATE)
    with pytest.raises(ValueError, match="<array>.*Inf"):
        load_audio(torch.tensor([0.0, float("inf")]), SAMPLE_RATE)
    with pytest.raises(ValueError, match="<array>.*shape"):
        load_audio(np.zeros((2, 2, 2), dtype=np.float32), SAMPLE_RATE)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        load_audio(tmp_path / "nope.wav")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.wav.*empty"):
        load_audio(empty)
    with pytest.raises(ValueError, match="<bytes>.*empty"):
        load_audio(b"")
    with pytest.raises(ValueError, match="<file object>.*empty"):
        load_audio(io.BytesIO(b""))


@pytest.mark.parametrize(("samples", "rate"), [(1, 16_000), (1, 44_100), (200, 16_000)])
def test_audio_too_short_for_a_spectrogram_names_the_file(samples, rate, tmp_path):
    path = tmp_path / "blip.wav"
    sf.write(path, np.full(samples, 0.1, dtype=np.float32), rate)
    with pytest.raises(ValueError, match=r"blip.wav: too short .* at least 201"):
        load_audio(path)
    with pytest.raises(ValueError, match="<array>: too short"):
        load_audio(np.full(samples, 0.1, dtype=np.float32), rate)


def test_the_shortest_usable_audio_gives_a_spectrogram():
    audio = load_audio(np.full(MIN_SAMPLES, 0.1, dtype=np.float32), SAMPLE_RATE)
    assert log_mel_spectrogram(torch.from_numpy(audio)).shape[-1] >= 1


def test_non_audio_inputs(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello world\n" * 100)
    with pytest.raises(ValueError, match="notes.txt.*not a readable audio file"):
        load_audio(text)
    with pytest.raises(ValueError, match="<bytes>.*not a readable audio file"):
        load_audio(np.random.default_rng(0).bytes(5000))
    with open(text) as file, pytest.raises(ValueError, match="<file object>.*binary"):
        load_audio(file)


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "MP3", "webm"])
def test_truncated_files(fmt, tmp_path):
    clip = sine(440, 2.0, SAMPLE_RATE)
    if fmt == "webm":
        data = encode_av(clip, 48_000, "webm", "libopus")
    else:
        data = encode_soundfile(clip, SAMPLE_RATE, fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=f"cut.{fmt.lower()}.*truncated"):
        load_audio(path)


def chirp(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    noise = 0.01 * np.random.default_rng(0).standard_normal(len(t))
    return (0.5 * np.sin(2 * np.pi * (50 * t + 120 * t**2)) + noise).astype(np.float32)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_log_mel_matches_whisper_feature_extractor(n_mels):
    extractor = WhisperFeatureExtractor(feature_size=n_mels)
    for clip in (chirp(30.0), chirp(5.0)):
        expected = extractor(clip, sampling_rate=SAMPLE_RATE, return_tensors="np")
        expected = expected.input_features[0]  # [n_mels, 3000], clip padded to 30 s
        padded = np.pad(clip, (0, N_SAMPLES - len(clip)))
        ours = log_mel_spectrogram(padded, n_mels=n_mels)
        assert ours.shape == (n_mels, N_FRAMES)
        assert np.abs(ours.numpy() - expected).max() < 1e-4
        with_lengths = log_mel_spectrogram(padded, n_mels=n_mels, lengths=[len(clip)])
        assert np.abs(with_lengths.numpy() - expected).max() < 1e-4


def test_log_mel_batch_equals_single():
    clips = [chirp(3.0), 0.1 * chirp(3.0)[::-1].copy()]
    batch = log_mel_spectrogram(torch.from_numpy(np.stack(clips)))  # [2, 80, 300]
    assert batch.shape == (2, 80, 300)
    for row, clip in zip(batch, clips, strict=True):
        assert torch.allclose(row, log_mel_spectrogram(clip), atol=1e-5)


def test_log_mel_lengths_make_padding_invisible():
    clip = chirp(2.0)
    valid = len(clip) // HOP_LENGTH
    short = np.pad(clip, (0, SAMPLE_RATE))  # 3 s
    long = np.pad(clip, (0, 5 * SAMPLE_RATE))  # 7 s
    batch = np.stack([long, np.pad(0.01 * clip, (0, 5 * SAMPLE_RATE))])
    lengths = torch.tensor([len(clip), len(clip)])
    a = log_mel_spectrogram(short, lengths=[len(clip)])[:, :valid]
    b = log_mel_spectrogram(batch, lengths=lengths)[0, :, :valid]
    assert torch.allclose(a, b, atol=1e-5)
    assert log_mel_spectrogram(batch).shape == (2, 80, 7 * MEL_FRAMES_PER_SECOND)


def test_log_mel_bad_input():
    with pytest.raises(ValueError, match="lengths"):
        log_mel_spectrogram(np.zeros((2, 1000), dtype=np.float32), lengths=[1000])
    with pytest.raises(ValueError, match="samples"):
        log_mel_spectrogram(np.zeros(100, dtype=np.float32))
