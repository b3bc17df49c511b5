import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

from voxlm.data.manifest import read_manifest
from voxlm.llm import char_tokenizer
from voxlm.model import VoxLM
from voxlm.timestamps import (
    TimestampSummary,
    VoxLMTimestamper,
    WhisperTimestamper,
    add_timestamps,
)

TEXT = "the quick, brown fox don't stop"


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(16_000 * seconds)) / 16_000
    return (0.3 * np.sin(2 * math.pi * 220 * t) * rng.random(len(t))).astype(np.float32)


def check_timings(timings, text, duration):
    assert [w for w, _, _ in timings] == text.split()
    starts = [s for _, s, _ in timings]
    ends = [e for _, _, e in timings]
    assert all(0 <= s <= e <= duration for _, s, e in timings)
    assert starts == sorted(starts) and ends == sorted(ends)


@pytest.fixture(scope="module")
def whisper_timestamper():
    torch.manual_seed(0)
    tokenizer = char_tokenizer()
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        d_model=64,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        num_mel_bins=80,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.unk_token_id,
    )
    model = WhisperForConditionalGeneration(config)
    return WhisperTimestamper(model, tokenizer, WhisperFeatureExtractor(feature_size=80))


def test_whisper_timestamper(whisper_timestamper):
    audio = speechlike(1.5)
    timings = whisper_timestamper(audio, TEXT)
    check_timings(timings, TEXT, 1.5)
    assert whisper_timestamper.heads == [(1, 0), (1, 1)]  # last half of the decoder layers
    with pytest.raises(ValueError, match="longer than"):
        whisper_timestamper(speechlike(31.0), TEXT)
    with pytest.raises(ValueError, match="empty transcript"):
        whisper_timestamper(audio, "  ")


def test_voxlm_timestamper():
    torch.manual_seed(0)
    timestamper = VoxLMTimestamper(VoxLM.from_config("voxlm-tiny"))
    for seconds in (1.2, 0.1):  # a clip with fewer frames than tokens still gets ordered times
        check_timings(timestamper(speechlike(seconds), TEXT), TEXT, seconds)


def test_add_timestamps_counts_a_corrupt_file(tmp_path, whisper_timestamper):
    sf.write(tmp_path / "good.wav", speechlike(1.0), 16_000)
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really audio")
    timed = [{"word": "already", "start": 0.1, "end": 0.4}]
    lines = [
        {"audio_filepath": "good.wav", "duration": 1.0, "text": "hello there", "id": "good"},
        {"audio_filepath": "bad.wav", "duration": 1.0, "text": "broken file", "id": "bad"},
        {"audio_filepath": "good.wav", "duration": 1.0, "text": "already", "words": timed},
    ]
    manifest = tmp_path / "in.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))

    summary = add_timestamps(manifest, tmp_path / "out.jsonl", whisper_timestamper, progress=False)

    assert summary == TimestampSummary(n_utterances=3, n_added=1, n_kept=1, n_failed=1)
    good, bad, kept = read_manifest(tmp_path / "out.jsonl")
    check_timings(good.words, "hello there", 1.0)
    assert bad.words is None
    assert kept.words == (("already", 0.1, 0.4),)
