"""The published architectures of the backbones the variants name, kept as data.

Sizing, memory and speed work needs every variant at its real shape, and the model hub is often
out of reach. ``architectures.json`` holds each backbone's published config.json numbers and
parameter count, each with its source; :func:`random_weight_config` turns a ``ModelConfig`` that
names hub backbones into one that builds them from those numbers with random weights, and with
a stand-in byte-level tokenizer padded to the LLM's vocabulary (``llm.byte_tokenizer``), since
there are no tokenizer files either. ``VoxLM.from_config(name, random_weights=True)`` uses it.

``python -m voxlm.architectures`` prints each variant's parameter counts as a markdown table
(docs/CONFIGS.md), counted on the meta device so that a 14B model costs no memory.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from voxlm.config import ModelConfig, get_config, variant_names

ARCHITECTURES_FILE = Path(__file__).with_name("architectures.json")
KINDS = ("audio_encoder", "llm")


@dataclass(frozen=True)
class ParamCount:
    """A parameter count and where it comes from."""

    count: int
    part: str  # what it counts: "full model", "encoder + decoder", "encoder"
    basis: str  # "published" (its source states it) or "computed" (from the config numbers)
    source: str


@dataclass(frozen=True)
class Architecture:
    """One backbone's published shape: a transformers config (with ``model_type``) and counts.

    ``built_params`` counts the part VoxLM builds: the whole model for an LLM, only the encoder
    of a Whisper checkpoint (its decoder is never loaded), so it can differ from the published.
    """

    name: str
    kind: str  # "audio_encoder" or "llm"
    config: Mapping[str, Any]
    config_source: str
    published_params: ParamCount
    built_params: ParamCount

    def transformers_config(self) -> dict[str, Any]:
        """The config as a fresh dict, for ``ModelConfig.audio_encoder_config`` / ``llm_config``."""
        return copy.deepcopy(dict(self.config))


@functools.cache
def architectures() -> Mapping[str, Architecture]:
    """Every backbone in ``architectures.json``, by hub name (read once)."""
    data = json.loads(ARCHITECTURES_FILE.read_text(encoding="utf-8"))
    out = {}
    for name, entry in data["backbones"].items():
        if entry["kind"] not in KINDS:
            raise ValueError(f"{ARCHITECTURES_FILE}: {name}: kind must be one of {KINDS}")
        published = ParamCount(**entry["published_params"])
        built = ParamCount(**entry["built_params"]) if "built_params" in entry else published
        config = MappingProxyType(entry["config"])
        out[name] = Architecture(
            name, entry["kind"], config, entry["config_source"], published, built
        )
    return MappingProxyType(out)


@functools.cache
def aliases() -> Mapping[str, str]:
    """Local paths the variants name -> the hub backbone whose architecture they have."""
    data = json.loads(ARCHITECTURES_FILE.read_text(encoding="utf-8"))
    return MappingProxyType(data["aliases"])


def architecture(name: str, kind: str | None = None) -> Architecture:
    """The published architecture of the backbone ``name`` (a hub name or a known local path)."""
    found = architectures().get(aliases().get(name, name))
    if found is None:
        raise ValueError(
            f"no published architecture for {name!r} in {ARCHITECTURES_FILE.name}; known: "
            f"{', '.join([*architectures(), *aliases()])}. Give the backbone's transformers "
            "config as model.audio_encoder_config / model.llm_config instead"
        )
    if kind is not None and found.kind != kind:
        raise ValueError(f"{name!r} is a backbone of kind {found.kind!r}, expected {kind!r}")
    return found


def random_weight_config(config: ModelConfig) -> ModelConfig:
    """``config`` with each backbone it names by hub name or path built at random instead, at
    its published architecture; a backbone already given as a config is kept as it is.

    An LLM built this way has no tokenizer files, so unless the config names a built-in
    tokenizer it gets the byte-level stand-in, padded to the LLM's vocabulary size.
    """
    changes: dict[str, Any] = {}
    if config.audio_encoder_config is None:
        encoder = architecture(config.audio_encoder, "audio_encoder")
        changes["audio_encoder_config"] = encoder.transformers_config()
    if config.llm_config is None:
        changes["llm_config"] = architecture(config.llm_model, "llm").transformers_config()
        if config.tokenizer is None:
            changes["tokenizer"] = "byte"
    return dataclasses.replace(config, **changes)


def count_parameters(module: nn.Module) -> int:
    """Parameters of ``module``, a tied weight counted once (as published counts do)."""
    return sum(p.numel() for p in module.parameters())


@dataclass(frozen=True)
class VariantSize:
    """What a variant builds, in parameters: encoder, LLM (without LoRA) and the whole model."""

    name: str
    audio_encoder: str
    llm: str
    encoder_params: int
    llm_params: int
    total_params: int

    @property
    def added_params(self) -> int:
        """Projector, aligner, LoRA adapters and CTC head: what VoxLM adds to the backbones."""
        return self.total_params - self.encoder_params - self.llm_params


def variant_size(name: str) -> VariantSize:
    """Count a variant's parameters by building it with random weights on the meta device."""
    from voxlm.model import VoxLM  # voxlm.model imports this module

    with torch.device("meta"):
        model = VoxLM.from_config(name, random_weights=True)
    llm = sum(p.numel() for n, p in model.llm.named_parameters() if "lora_" not in n)
    config = get_config(name).model
    return VariantSize(
        name,
        _display_name(config.audio_encoder, config.audio_encoder_config),
        _display_name(config.llm_model, config.llm_config),
        count_parameters(model.encoder),
        llm,
        count_parameters(model),
    )


def _display_name(name: str, random_config: dict | None) -> str:
    if random_config is not None:
        return f"{name} (random init)"
    return f"{name} ({aliases()[name]})" if name in aliases() else name


def format_count(n: int) -> str:
    """3 significant digits with k, M or B, as model pages write sizes: 8.21M, 494M, 14.7B."""
    for scale, unit in ((1e9, "B"), (1e6, "M")):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n / 1e3:.3g}k"


def size_table(sizes: Iterable[VariantSize]) -> str:
    """Variants' parameter counts as a markdown table (docs/CONFIGS.md)."""
    lines = [
        "| variant | audio encoder | encoder | LLM | LLM params | added by VoxLM | total |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    for s in sizes:
        lines.append(
            f"| {s.name} | {s.audio_encoder} | {format_count(s.encoder_params)} | {s.llm} | "
            f"{format_count(s.llm_params)} | {format_count(s.added_params)} | "
            f"{format_count(s.total_params)} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(size_table(variant_size(name) for name in variant_names()))
