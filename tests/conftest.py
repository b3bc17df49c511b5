"""Shared fixtures: tiny random backbones of every family, and short audio files."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf
import torch

from voxlm.config import ModelConfig, get_config

TINY_ENCODERS = {
    "whisper": {
        "model_type": "whisper",
        "num_mel_bins": 80,
        "d_model": 64,
        "encoder_layers": 2,
        "encoder_attention_heads": 4,
        "encoder_ffn_dim": 128,
        "decoder_layers": 1,
        "decoder_attention_heads": 4,
        "decoder_ffn_dim": 64,
        "max_source_positions": 1500,
    },
    "wav2vec2": {
        "model_type": "wav2vec2",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "conv_dim": [32] * 7,
        "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
        "conv_stride": [5, 2, 2, 2, 2, 2, 2],
        "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 4,
    },
}
_LLM = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}
TINY_LLMS = {
    "qwen2": {"model_type": "qwen2", **_LLM},
    "llama": {"model_type": "llama", **_LLM},
    "phi3": {"model_type": "phi3", **_LLM},
    "gemma": {"model_type": "gemma", **_LLM, "head_dim": 16},
}


def tiny_config(encoder: str = "whisper", llm: str = "qwen2", **overrides) -> ModelConfig:
    """voxlm-tiny shrunk further, with the chosen backbone families."""
    base = get_config("voxlm-tiny").model
    return dataclasses.replace(
        base,
        audio_encoder_config=TINY_ENCODERS[encoder],
        llm_config=TINY_LLMS[llm],
        aligner_dim=32,
        **overrides,
    )


def tone(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """A voiced-sounding test signal (harmonics of a gliding pitch) that passes the VAD."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    rng = np.random.default_rng(seed)
    x = sum(np.sin(k * phase) / k for k in range(1, 12)) * (
        0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2
    )
    return (0.2 * x / np.abs(x).max() + 0.001 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture
def wav_file(tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, tone(1.5), 16000)
    return path


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)
