"""Checkpoints that resume a phase exactly, and the atomically replaced best model.

``last.pt`` holds what the next optimizer step depends on: the weights that change (and those a
fresh model could not rebuild, such as randomly initialised backbones), the optimizer and
scheduler, the position in the data (epoch and batches already consumed in it), the best
metric so far, every RNG state and the wall time used. Restoring all of it makes the step after
a resume identical to the step an uninterrupted run would have taken.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from voxlm.model import VoxLM, check_weight_names

logger = logging.getLogger("voxlm")

CHECKPOINT_FILE = "last.pt"
BEST_DIR = "best"
FORMAT_VERSION = 1


@dataclass
class TrainState:
    """Where a phase stands. Mutable: the loop advances it every step."""

    step: int = 0  # optimizer steps taken
    epoch: int = 0  # the epoch in progress
    batch_in_epoch: int = 0  # batches of that epoch already consumed (skipped on resume)
    best_metric: float | None = None  # lower is better (dev WER or dev alignment loss)
    elapsed: float = 0.0  # seconds of wall time this phase has used


def checkpoint_state(model: VoxLM) -> dict[str, torch.Tensor]:
    """The weights a checkpoint needs: trainable ones, plus all that ``save_pretrained`` keeps.

    ``trained_state_dict`` covers random-initialised backbones (voxlm-tiny), which a fresh model
    built with another seed would not reproduce, even when they are frozen.
    """
    keep = set(model.trained_state_dict())
    keep.update(n for n, p in model.named_parameters() if p.requires_grad)
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if k in keep}


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and every CUDA device) generator states."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        # As a tensor and plain numbers, so the file loads with weights_only=True.
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_as_tuples(state["python"]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(value: Any) -> Any:
    """random.setstate needs tuples; a round trip through the checkpoint may give lists."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, list | tuple) else value


def save_checkpoint(
    path: Path,
    model: VoxLM,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: TrainState,
) -> None:
    """Write ``path`` atomically: a crash mid-write leaves the previous checkpoint intact."""
    payload = {
        "version": FORMAT_VERSION,
        "model": checkpoint_state(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "state": asdict(state),
        "rng": rng_state(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(
    path: Path,
    model: VoxLM,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> tuple[TrainState, dict[str, Any]]:
    """Restore weights, optimizer and scheduler from ``path``; return the state and RNG states.

    The RNG states are returned rather than applied so that the caller restores them last,
    after everything else that might draw random numbers.
    """
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: not a VoxLM training checkpoint (format {FORMAT_VERSION})")
    weights = payload["model"]
    unexpected = sorted(set(weights) - set(model.state_dict()))
    missing = sorted(n for n, p in model.named_parameters() if p.requires_grad and n not in weights)
    check_weight_names(str(path), "the model and its trainable modules", missing, unexpected)
    model.load_state_dict(weights, strict=False)
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    return TrainState(**payload["state"]), payload["rng"]


def save_best(model: VoxLM, directory: Path) -> None:
    """The best model so far; ``save_pretrained`` swaps the directory in whole
    (``voxlm.weights.replace_directory``), so a reader never sees half a model."""
    model.save_pretrained(directory)
