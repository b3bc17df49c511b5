"""The whole `voxlm train` sequence on a tiny synthetic corpus, in one and in two processes."""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

import voxlm.data.synth
from voxlm.config import load_config
from voxlm.model import VoxLM
from voxlm.training.pipeline import prepare_data, run_training

CONFIGS = Path(__file__).parents[2] / "configs"
TINY = {
    "name": "voxlm-tiny",
    "audio_encoder_config": {
        "model_type": "whisper",
        "num_mel_bins": 80,
        "d_model": 48,
        "encoder_layers": 1,
        "encoder_attention_heads": 2,
        "encoder_ffn_dim": 96,
        "decoder_layers": 1,
        "decoder_attention_heads": 2,
        "decoder_ffn_dim": 32,
        "max_source_positions": 1500,
    },
    "llm_config": {
        "model_type": "qwen2",
        "hidden_size": 48,
        "intermediate_size": 96,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 1024,
        "tie_word_embeddings": True,
    },
    "aligner_dim": 32,
}


def write_config(tmp_path: Path, corpus: Path) -> Path:
    config = {
        "inherits": str(Path(__file__).parents[2] / "configs" / "voxlm-tiny.yaml"),
        "model": TINY,
        "training": {
            "num_workers": 0,
            "log_every": 2,
            "phase1": {
                "batch_size": 4,
                "max_steps": 4,
                "warmup_steps": 1,
                "learning_rate": 1e-3,
                "ctc_weight": 0.5,
                "train_modules": ["encoder", "projector", "llm", "ctc"],
                "eval_every": 4,
                "save_every": 2,
            },
            "phase2": {"batch_size": 4, "max_steps": 2, "warmup_steps": 1, "save_every": 2},
        },
        "data": {
            "dataset": "manifest",
            "data_dir": str(corpus),
            "train_split": "train",
            "val_split": "dev",
            "test_split": "test",
        },
        "output": {
            "checkpoint_dir": str(tmp_path / "ckpt"),
            "final_model_dir": str(tmp_path / "models"),
        },
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_train_runs_both_phases_and_saves_a_loadable_model(tmp_path, synth_corpus):
    config = load_config(write_config(tmp_path, synth_corpus))
    result = run_training(config, progress=False)
    assert result.phase1.steps == 4 and result.phase2.steps == 2
    model = VoxLM.from_pretrained(result.model_dir)
    audio = next((synth_corpus / "test").rglob("*.flac"))
    assert model.transcribe(audio).audio_duration > 0
    assert (tmp_path / "ckpt" / "voxlm-tiny" / "phase1" / "curves.png").is_file()


def test_phase2_alone_starts_from_phase1(tmp_path, synth_corpus):
    config = load_config(write_config(tmp_path, synth_corpus))
    with pytest.raises(FileNotFoundError, match="phase 1"):
        run_training(config, phases=(2,), progress=False)
    run_training(config, phases=(1,), progress=False)
    assert run_training(config, phases=(2,), progress=False).phase2.steps == 2


def test_two_process_accelerate_launch(tmp_path, synth_corpus):
    config = write_config(tmp_path, synth_corpus)
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "-m",
            "voxlm",
            "train",
            "--config",
            str(config),
            "--phase",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "phase1: 2 processes" in run.stderr, run.stderr[-2000:]
    log = (tmp_path / "ckpt" / "voxlm-tiny" / "phase1" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step") and len(log) > 1
    assert (
        json.loads((tmp_path / "models" / "voxlm-tiny" / "voxlm_config.json").read_text())["name"]
        == "voxlm-tiny"
    )


def test_synthetic_corpus_is_reused_whatever_the_split_names(tmp_path, monkeypatch):
    """voxlm-tiny.yaml keeps the LibriSpeech split names; its corpus must not be made again."""
    for split in ("train", "dev", "test"):
        (tmp_path / f"{split}.jsonl").write_text("")

    def synthesise(*args, **kwargs):
        raise AssertionError("the corpus was synthesised again")

    monkeypatch.setattr(voxlm.data.synth, "synthesize_corpus", synthesise)
    config = load_config(CONFIGS / "voxlm-tiny.yaml", overrides=[f"data.data_dir={tmp_path}"])
    assert config.data.train_split != "train"
    paths = prepare_data(config, progress=False)
    assert paths == {k: tmp_path / f"{k}.jsonl" for k in ("train", "dev", "test")}


def test_a_synthetic_corpus_speaks_with_the_configured_voices(tmp_path, monkeypatch):
    made = []

    def synthesise(options, progress):
        made.append(options)
        for split in ("train", "dev", "test"):
            (tmp_path / f"{split}.jsonl").write_text("")
        return SimpleNamespace(utterances={})

    monkeypatch.setattr(voxlm.data.synth, "synthesize_corpus", synthesise)
    overrides = [f"data.data_dir={tmp_path}", "data.voices=[en-us, flite:slt]"]
    prepare_data(load_config(CONFIGS / "voxlm-tiny.yaml", overrides=overrides), progress=False)
    assert made[0].voices == ("en-us", "flite:slt")


def test_a_phase_ends_holding_its_best_weights_without_building_a_second_model(
    tmp_path, synth_corpus, monkeypatch
):
    config = load_config(write_config(tmp_path, synth_corpus))
    built = []
    original = VoxLM.__init__

    def counting_init(self, *args, **kwargs):
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(VoxLM, "__init__", counting_init)
    result = run_training(config, phases=(1,), progress=False)
    assert len(built) == 1  # the model trained, never a copy to read the best weights into
    best = VoxLM.from_pretrained(result.phase1.best_dir)
    final = VoxLM.from_pretrained(result.model_dir)
    for name, tensor in best.trained_state_dict().items():
        torch.testing.assert_close(final.state_dict()[name], tensor)
