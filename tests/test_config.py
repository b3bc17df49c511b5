import dataclasses
import json
import re
from pathlib import Path

import pytest

from voxlm import QwenSTTConfig, VoxLMConfig
from voxlm.config import (
    DEFAULT_VARIANT,
    get_config,
    legacy_names,
    load_config,
    variant_names,
    variant_path,
)

ROOT = Path(__file__).parent.parent
CONFIGS = ROOT / "configs"
BEFORE = json.loads((Path(__file__).parent / "configs_before_registry.json").read_text())


def _json(values: dict) -> dict:
    """Tuples as lists, as the recorded values were written."""
    return json.loads(json.dumps(values))


def variant_table(path: Path) -> dict[str, tuple[str, str]]:
    """{name: (encoder cell, LLM cell)} of the markdown table under '## Variants' in a file."""
    section = path.read_text().split("## Variants", 1)[1]
    rows = {}
    for line in section.splitlines()[3:]:
        if not line.startswith("|"):
            break
        name, encoder, llm = (cell.strip() for cell in line.strip("|").split("|")[:3])
        rows[re.sub(r"\*\*|\(default\)", "", name).strip()] = (encoder, llm)
    return rows


@pytest.mark.parametrize("doc", ["README.md", "docs/CONFIGS.md"])
def test_the_docs_tables_list_the_registry(doc):
    table = variant_table(ROOT / doc)
    assert set(table) == set(variant_names())
    for name, (encoder, llm) in table.items():
        model = get_config(name).model
        assert model.audio_encoder in encoder and model.llm_model in llm, name
    assert f"**{DEFAULT_VARIANT}** (default)" in (ROOT / doc).read_text()


@pytest.mark.parametrize("name", sorted(BEFORE["variant_models"]))
def test_variant_models_are_unchanged_by_the_move_to_files(name):
    model = _json(get_config(name).model.__dict__)
    # Keys added since the snapshot: how long audio is windowed (voxlm-tiny: regions alone),
    # what the CTC head spells.
    tiny = name == "voxlm-tiny"
    assert model.pop("window_seconds") == (8 if tiny else None)
    assert model.pop("pack_windows") is (not tiny)
    assert model.pop("ctc_units") == "tokens"
    assert model == BEFORE["variant_models"][name]


def test_the_registry_is_the_variant_files():
    assert set(variant_names()) == {*BEFORE["variant_models"], "voxlm-smol"}
    for name in variant_names():
        assert variant_path(name).parent == CONFIGS.resolve()
        assert load_config(CONFIGS / f"{name}.yaml") == get_config(name)
    assert get_config("voxlm-phi-4").model.lora_target_modules == ("qkv_proj", "o_proj")
    assert "voxlm-tiny-long" not in variant_names() and "base" not in variant_names()


def test_legacy_names_resolve():
    assert legacy_names()["qwen-stt-0.5b"] == "voxlm-0.5b"
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
    overrides = ["training.phase1.epochs=3", "model.lora_r=4", "training.phase1.learning_rate=1e-3"]
    config = load_config(path, overrides=overrides)
    assert config.training.phase1.epochs == 3 and config.training.phase1.batch_size == 4
    assert config.training.phase1.learning_rate == 0.001  # YAML reads 1e-3 as a string
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
        ("training.phase1.learning_rate=fast", "learning_rate: expected float"),
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
    assert config.training.phase1.max_steps == 3450 and config.training.phase1.max_minutes == 60
    assert config.training.phase1.span_ctc_weight == 1.0
    assert config.training.phase2.train_modules == ("aligner",)


def test_the_smol_flite_recipe_is_voxlm_smol_reading_its_own_letters():
    config = load_config(CONFIGS / "voxlm-smol-flite.yaml")
    smol = get_config("voxlm-smol").model
    assert config.model == dataclasses.replace(
        smol, ctc=True, ctc_units="characters", ctc_embeddings=True
    )
    phase1 = config.training.phase1
    assert phase1.ctc_only_steps == 1000 and "ctc" in phase1.train_modules
    assert config.data.dataset == "synthetic" and all(
        v.startswith("flite:") for v in config.data.voices
    )
