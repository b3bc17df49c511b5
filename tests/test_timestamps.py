import json
import logging
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REAL_SPEECH, real_speech_rows, tone
from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

from voxlm.audio import load_audio
from voxlm.data.manifest import read_manifest
from voxlm.llm import char_tokenizer
from voxlm.model import VoxLM
from voxlm.timestamps import (
    TimestampSummary,
    VoxLMTimestamper,
    WhisperTimestamper,
    add_timestamps,
    snap_onsets,
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


def test_silence_before_and_after_speech_goes_to_no_word(whisper_timestamper):
    """A DTW path covering every frame puts the first word at 0.00 s, whatever precedes it."""
    silence = np.zeros(8000, dtype=np.float32)
    audio = np.concatenate([silence, tone(1.5), silence])  # speech from 0.5 s to 2.0 s
    timings = whisper_timestamper(audio, TEXT)
    check_timings(timings, TEXT, 2.5)
    assert timings[0][1] >= 0.46 and timings[-1][2] <= 2.04
    untrimmed = WhisperTimestamper(
        whisper_timestamper.model,
        whisper_timestamper.tokenizer,
        whisper_timestamper.feature_extractor,
        trim_silence=False,
    )
    assert untrimmed(audio, TEXT)[0][1] == 0.0


def test_onsets_move_to_the_quietest_frame_nearby_and_stay_in_order():
    audio = np.tile(tone(0.02), 20)  # 20 frames of 20 ms, all equally loud
    audio[7 * 320 : 8 * 320] *= 0.01  # a dip at frame 7
    audio[12 * 320 : 13 * 320] *= 0.01  # and at frame 12
    spans = np.array([[0, 5], [5, 10], [10, 13], [14, 20]])
    snapped = snap_onsets(spans, [1, 2, 3], audio, radius=3)
    assert snapped[1, 0] == 7  # moved 2 frames to the dip
    assert snapped[2, 0] == 12  # moved 2 frames to the dip
    assert snapped[3, 0] == 13 or snapped[3, 0] > snapped[2, 0]  # never before the onset before
    assert (np.diff(snapped[:, 0]) > 0).all() and (snapped[:, 1] > snapped[:, 0]).all()


def test_missing_alignment_heads_are_named_in_a_warning(whisper_timestamper, caplog):
    with caplog.at_level(logging.WARNING, logger="voxlm"):
        WhisperTimestamper(
            whisper_timestamper.model,
            whisper_timestamper.tokenizer,
            whisper_timestamper.feature_extractor,
        )
    assert "alignment_heads" in caplog.text


def test_real_whisper_base_places_onsets_of_human_timed_speech_within_50_ms(whisper_base_hf):
    rows = real_speech_rows(timings="human")
    timestamper = WhisperTimestamper.from_pretrained(whisper_base_hf)
    errors = []
    for row in rows:
        audio = load_audio(REAL_SPEECH / row["audio_filepath"])
        timings = timestamper(audio, row["text"])
        check_timings(timings, row["text"], len(audio) / 16000)
        errors += [abs(t[1] - w["start"]) for t, w in zip(timings, row["words"], strict=True)]
        if row["words"][0]["start"] > 0.2:  # speech starts late: the first word must, too
            assert timings[0][1] > 0.15, row["id"]
    assert len(errors) >= 18 and np.mean(errors) <= 0.050
