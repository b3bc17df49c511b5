"""Where weights are saved and what a saved model holds.

A saved model is a directory: ``voxlm_config.json`` (the ``ModelConfig``), ``model.safetensors``
(the weights training changed) and the tokenizer. A pretrained backbone that was not trained
is not saved: it is rebuilt from its hub name or path on load, so a voxlm-9b directory holds
the projector, aligner, CTC head and LoRA adapters, not 9 B weights. A randomly initialised
backbone (voxlm-tiny) or one trained in full is saved, since nothing else could rebuild it.
A calibrated model also holds ``calibration.json`` (``voxlm.calibration``), and a model whose
benchmarks name a decoding holds it in ``decoding.json`` (``read_decoding``): transcribe's defaults.

A model whose trained parts ship inside the package (``SHIPPED_DIR``) loads by its name alone;
``ship`` writes such a directory from a saved model, its weights in float16.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file

from voxlm.calibration import CALIBRATION_FILE, Calibration
from voxlm.config import ModelConfig, _build, get_config

if TYPE_CHECKING:
    from voxlm.model import VoxLM

logger = logging.getLogger("voxlm")

CONFIG_FILE = "voxlm_config.json"
WEIGHTS_FILE = "model.safetensors"
DECODING_FILE = "decoding.json"
SHIPPED_DIR = Path(__file__).parent / "trained"  # package data: trained/<variant>/


def is_saved(name: str, config: ModelConfig) -> bool:
    """Whether the weight ``name`` (a ``VoxLM.state_dict`` key) belongs in a saved model."""
    if name.startswith("encoder."):
        return config.audio_encoder_config is not None or not config.freeze_encoder
    if name.startswith("llm."):
        return config.llm_config is not None or not config.use_lora or "lora_" in name
    return True  # projector, aligner, CTC head: always trained


def trained_state_dict(model: VoxLM) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if is_saved(k, model.config)}


def check_weight_names(source: str, what: str, missing: list[str], unexpected: list[str]) -> None:
    """Raise a ValueError naming (a few of) the missing and unexpected tensors, if any."""
    if missing or unexpected:
        raise ValueError(
            f"{source}: weights do not match {what}: "
            f"{len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )


def load_trained_state(model: VoxLM, state: dict[str, torch.Tensor], source: str) -> None:
    """Load weights, failing with the names of any missing or unexpected tensors."""
    expected = set(trained_state_dict(model))
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - set(model.state_dict()))
    check_weight_names(source, "the model config", missing, unexpected)
    model.load_state_dict(state, strict=False)


def replace_directory(tmp: Path, directory: Path) -> None:
    """Swap the finished directory ``tmp`` in for ``directory``, so readers never see half.

    A directory cannot be renamed over a non-empty one, so the old copy is moved aside first;
    a crash between the two renames leaves it at ``<name>.old``.
    """
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)


def save_pretrained(model: VoxLM, directory: str | Path) -> None:
    """Write config, saved weights (safetensors), tokenizer and any confidence calibration
    into ``directory`` atomically."""
    directory = Path(directory)
    state = {k: v.detach().contiguous().cpu() for k, v in trained_state_dict(model).items()}
    tmp = _staged(directory, model.config, state)
    model.tokenizer.save_pretrained(tmp)
    if model.calibration is not None:
        model.calibration.save(tmp)
    replace_directory(tmp, directory)


def _staged(directory: Path, config: ModelConfig, state: dict[str, torch.Tensor]) -> Path:
    """A fresh ``<directory>.tmp`` holding the config and ``state``, to finish and then swap in
    with ``replace_directory``."""
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(_untie(state), tmp / WEIGHTS_FILE)
    (tmp / CONFIG_FILE).write_text(json.dumps(asdict(config), indent=2))
    return tmp


def read_model_directory(path: Path) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """The config and weights of a directory ``save_pretrained`` wrote."""
    config_file = path / CONFIG_FILE
    if not config_file.is_file():
        raise ValueError(f"{path}: not a VoxLM model directory (no {CONFIG_FILE})")
    config = _build(ModelConfig, json.loads(config_file.read_text()), "model")
    return config, load_file(path / WEIGHTS_FILE)


def model_path(name_or_path: str | Path) -> Path:
    """``name_or_path`` as a path, unless no such path exists and a directory of that name ships
    in ``SHIPPED_DIR``: then that one, so ``--model NAME`` loads the trained parts shipped."""
    path, shipped = Path(name_or_path), SHIPPED_DIR / str(name_or_path)
    return shipped if not path.exists() and (shipped / CONFIG_FILE).is_file() else path


def read_decoding(path: Path) -> dict[str, Any]:
    """The ``DecodingOptions`` fields a model directory's ``decoding.json`` sets ({} without
    one). ``lexicon`` is a word-list file beside it or ``wordfreq:LANGUAGE:N``
    (``voxlm.lexicon.Lexicon.load``)."""
    from voxlm.decoding import DecodingOptions
    from voxlm.lexicon import Lexicon

    file = path / DECODING_FILE
    if not file.is_file():
        return {}
    values = json.loads(file.read_text())
    known = DecodingOptions.__dataclass_fields__
    for name in values:
        if name not in known or name == "ngram":
            raise ValueError(f"{file}: {name!r} is not a decoding option that can be saved")
    if "lexicon" in values:
        source = values["lexicon"]
        local = path / source
        values["lexicon"] = Lexicon.load(local if local.is_file() else source)
    try:
        DecodingOptions(**values)  # checks the values here, naming the file if one is wrong
    except ValueError as error:
        raise ValueError(f"{file}: {error}") from None
    return values


def ship(model_dir: Path, name: str, decoding: dict[str, Any], root: Path | None = None) -> Path:
    """Write ``root/name``: the saved model's config, its weights in float16 (the backbones'
    own weights are float32 on load, and these are cast up to them) and ``decoding`` (a
    lexicon file is copied in beside it); no tokenizer, since the LLM's own is rebuilt from
    its name."""
    directory = (root or SHIPPED_DIR) / name
    config, state = read_model_directory(model_dir)
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    tmp = _staged(directory, config, half)
    if Path(str(decoding.get("lexicon", ""))).is_file():
        shutil.copyfile(decoding["lexicon"], tmp / "lexicon.txt")
        decoding = {**decoding, "lexicon": "lexicon.txt"}
    (tmp / DECODING_FILE).write_text(json.dumps(decoding, indent=2) + "\n")
    read_decoding(tmp)  # a wrong decoding fails here, not on a user's machine
    replace_directory(tmp, directory)
    return directory


def fingerprint(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of weights (names, dtypes, shapes and bytes): which weights a calibration fits."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def read_calibration(path: Path, state: dict[str, torch.Tensor]) -> Calibration | None:
    """The directory's confidence calibration, if it has one fitted on these weights.

    One fitted on other weights (the model was trained on after it was calibrated) would
    state wrong probabilities, so it is dropped with a warning.
    """
    calibration = Calibration.load(path)
    if calibration is not None and calibration.weights_sha256 not in (None, fingerprint(state)):
        logger.warning(
            "%s: %s was fitted on other weights (the model was trained since); not applied, "
            "run `voxlm calibrate` again",
            path,
            CALIBRATION_FILE,
        )
        return None
    return calibration


def read_checkpoint_file(
    path: Path, config: ModelConfig | None
) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """The config and weights of a ``best.pt``-style file holding ``model_state_dict`` (and a
    ``config`` unless one is given), loaded with ``weights_only=True``."""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or "model_state_dict" not in checkpoint:
        raise ValueError(f"{path}: expected a dict with 'model_state_dict'")
    return config or _checkpoint_config(checkpoint, path), checkpoint["model_state_dict"]


def _checkpoint_config(checkpoint: dict, path: Path) -> ModelConfig:
    values = checkpoint.get("config")
    if isinstance(values, dict):
        values = values.get("model", values)
        known = {k: v for k, v in values.items() if k in ModelConfig.__dataclass_fields__}
        base = get_config(known["name"]).model if known.get("name") else ModelConfig()
        return _build(ModelConfig, {**asdict(base), **known}, "model")
    raise ValueError(f"{path}: holds no 'config'; pass config=ModelConfig(...) to from_pretrained")


def _untie(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory (tied embeddings): store copies."""
    seen: set[int] = set()
    out = {}
    for key, value in state.items():
        ptr = value.untyped_storage().data_ptr()
        out[key] = value.clone() if ptr in seen else value
        seen.add(ptr)
    return out
