from pathlib import Path

import pytest

from voxlm import QwenSTTConfig, VoxLMConfig
from voxlm.config import LEGACY_NAMES, VARIANTS, get_config, load_config

CONFIGS = Path(__file__).parent.parent / "configs"

DESIGN_TABLE = {
    "voxlm-0.5b": ("openai/whisper-tiny", "Qwen/Qwen2-0.5B"),
    "voxlm-2b": ("openai/whisper-small", "Qwen/Qwen2-1.5B"),
    "voxlm-4b-multilingual": ("openai/whisper-large-v3-turbo", "Qwen/Qwen2.5-3B"),
    "voxlm-9b-global": ("openai/whisper-large-v3", "Qwen/Qwen2.5-7B"),
    "voxlm-9b-india": ("models/indicwhisper", "Qwen/Qwen2.5-7B"),
    "voxlm-llama-8b": ("openai/whisper-large-v3", "meta-llama/Llama-3.1-8B"),
    "voxlm-phi-4": ("openai/whisper-large-v3", "microsoft/phi-4"),
    "voxlm-edge": ("openai/whisper-tiny", "Qwen/Qwen2.5-0.5B"),
    "voxlm-tiny": ("tiny-whisper", "tiny-qwen2"),
}


@pytest.mark.parametrize("name", DESIGN_TABLE)
def test_variants_match_design_table(name):
    config = get_config(name)
    assert (config.model.audio_encoder, config.model.llm_model) == DESIGN_TABLE[name]
    assert config.model.name == name


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_yaml_matches_registry(name):
    assert load_config(CONFIGS / f"{name}.yaml").model == get_config(name).model


def test_legacy_names_resolve():
    assert LEGACY_NAMES["qwen-stt-0.5b"] == "voxlm-0.5b"
    assert get_config("qwen-stt-2b").model.name == "voxlm-2b"
    assert QwenSTTConfig is VoxLMConfig


def test_unknown_variant_lists_valid_names():
    with pytest.raises(ValueError, match="voxlm-2b"):
        get_config("voxlm-3b")


def test_overrides_and_seed_field_names(tmp_path):
    path = tmp_path / "seed.yaml"
    path.write_text(
        "model:\n  name: voxlm-0.5b\n  use_lora: true\n  lora_r: 8\n"
        "training:\n  phase1: {epochs: 2, batch_size: 4}\n  phase2: {epochs: 1, batch_size: 2}\n"
        "data:\n  train_split: train-clean-100\n  val_split: dev-clean\n"
        "output:\n  final_model_dir: out/final\n"
    )
    config = load_config(path, overrides=["training.phase1.epochs=3", "model.lora_r=4"])
    assert config.training.phase1.epochs == 3 and config.training.phase1.batch_size == 4
    assert config.model.lora_r == 4 and config.model.audio_encoder == "openai/whisper-tiny"
    assert config.output.final_model_dir == "out/final"


def test_inheritance_chain(tmp_path):
    (tmp_path / "child.yaml").write_text(
        f"inherits: {CONFIGS / 'voxlm-edge.yaml'}\nmodel:\n  lora_r: 4\n"
    )
    config = load_config(tmp_path / "child.yaml")
    assert config.model.llm_model == "Qwen/Qwen2.5-0.5B" and config.model.lora_r == 4
    assert config.training.phase1.learning_rate == 1e-4  # from base.yaml


def test_custom_example_loads():
    config = load_config(CONFIGS / "custom.yaml.example")
    assert config.data.dataset == "manifest"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("training.phase1.epoch=3", "training.phase1.epochs"),
        ("model.lora=8", "model.lora_r"),
        ("model.lora_r=eight", "model.lora_r: expected int"),
        ("data.dataset=youtube", "data.dataset must be"),
        ("nonsense", "section.key=value"),
    ],
)
def test_bad_keys_name_the_path_and_closest_name(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(CONFIGS / "base.yaml", overrides=[override])


def test_missing_and_circular_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "a.yaml").write_text("inherits: b.yaml\n")
    (tmp_path / "b.yaml").write_text("inherits: a.yaml\n")
    with pytest.raises(ValueError, match="circular"):
        load_config(tmp_path / "a.yaml")


def test_long_recipe_loads():
    config = load_config(CONFIGS / "voxlm-tiny-long.yaml")
    assert config.model.ctc_embeddings and config.model.ctc
    assert config.training.phase1.max_minutes == 28
    assert config.training.phase1.span_ctc_weight == 1.0
    assert config.training.phase2.train_modules == ("aligner",)
