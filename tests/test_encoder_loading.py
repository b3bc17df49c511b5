"""Pretrained encoders load every tensor from full checkpoints, or fail naming what is missing."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import TINY_ENCODERS, tiny_config
from safetensors.torch import load_file, save_file
from transformers import (
    Wav2Vec2Config,
    Wav2Vec2ForCTC,
    WhisperConfig,
    WhisperForConditionalGeneration,
)

from voxlm.encoder import AudioEncoder
from voxlm.model import VoxLM

# Token ids inside the tiny vocabulary (Whisper's defaults point past it).
_WHISPER = {
    **TINY_ENCODERS["whisper"],
    "vocab_size": 96,
    "max_target_positions": 32,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 0,
    "decoder_start_token_id": 1,
    "begin_suppress_tokens": None,
}


def _values(config: dict) -> dict:
    return {k: v for k, v in config.items() if k != "model_type"}


@pytest.fixture(scope="module")
def full_whisper(tmp_path_factory):
    path = tmp_path_factory.mktemp("whisper")
    WhisperForConditionalGeneration(WhisperConfig(**_values(_WHISPER))).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def full_wav2vec2(tmp_path_factory):
    path = tmp_path_factory.mktemp("wav2vec2")
    config = Wav2Vec2Config(**_values(TINY_ENCODERS["wav2vec2"]), vocab_size=32)
    Wav2Vec2ForCTC(config).save_pretrained(path)
    return path


def _assert_same(module: torch.nn.Module, saved: dict[str, torch.Tensor], prefix: str) -> None:
    """Every tensor of ``module`` equals the checkpoint's tensor ``prefix + name``, exactly."""
    state = module.state_dict()
    assert state, "the encoder has no tensors"
    for name, value in state.items():
        assert torch.equal(value, saved[prefix + name]), name


def test_voxlm_takes_every_whisper_encoder_tensor_from_a_full_checkpoint(full_whisper):
    config = dataclasses.replace(
        tiny_config(), audio_encoder=str(full_whisper), audio_encoder_config=None
    )
    model = VoxLM.from_config(config)
    saved = load_file(full_whisper / "model.safetensors")
    _assert_same(model.encoder.backbone, saved, "model.encoder.")


def test_whisper_encoder_saved_alone_loads(full_whisper, tmp_path):
    full = WhisperForConditionalGeneration.from_pretrained(full_whisper)
    full.model.encoder.save_pretrained(tmp_path)
    encoder = AudioEncoder.from_pretrained(str(tmp_path))
    _assert_same(encoder.backbone, load_file(tmp_path / "model.safetensors"), "")


def test_wav2vec2_encoder_loads_from_a_full_ctc_checkpoint(full_wav2vec2):
    encoder = AudioEncoder.from_pretrained(str(full_wav2vec2))
    assert encoder.kind == "wav2vec2"
    saved = load_file(full_wav2vec2 / "model.safetensors")
    _assert_same(encoder.backbone, saved, "wav2vec2.")


@pytest.mark.parametrize(
    ("fixture", "dropped"),
    [
        ("full_whisper", "model.encoder.layers.1.fc2.weight"),
        ("full_wav2vec2", "wav2vec2.encoder.layers.0.feed_forward.output_dense.bias"),
    ],
)
def test_a_missing_encoder_tensor_raises_naming_it(request, tmp_path, fixture, dropped):
    source = request.getfixturevalue(fixture)
    (tmp_path / "config.json").write_bytes((source / "config.json").read_bytes())
    state = load_file(source / "model.safetensors")
    del state[dropped]
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    short = dropped.removeprefix("model.encoder.").removeprefix("wav2vec2.")
    with pytest.raises(ValueError, match="missing tensors.*" + short.replace(".", r"\.")):
        AudioEncoder.from_pretrained(str(tmp_path))


def test_an_unexpected_encoder_tensor_raises_naming_it(full_whisper, tmp_path):
    (tmp_path / "config.json").write_bytes((full_whisper / "config.json").read_bytes())
    state = load_file(full_whisper / "model.safetensors")
    state["model.encoder.extra_scale"] = torch.ones(1)
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"unexpected tensors.*extra_scale"):
        AudioEncoder.from_pretrained(str(tmp_path))
