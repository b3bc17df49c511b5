"""What a phase trains and how fast: trainable parts, AdamW groups, warm-up + cosine schedule.

The trainer builds its optimizer and scheduler from these; they are plain functions of the
model and the phase's config, so they can be checked without running a step.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from voxlm.config import PhaseConfig

if TYPE_CHECKING:
    from voxlm.model import VoxLM

# The parts of a VoxLM that a phase can train, as parameter-name tests.
TRAINABLE_MODULES = {
    "encoder": lambda name: name.startswith("encoder."),
    "projector": lambda name: name.startswith("projector."),
    "llm": lambda name: name.startswith("llm."),
    "lora": lambda name: "lora_" in name,
    "aligner": lambda name: name.startswith("aligner."),
    "ctc": lambda name: name.startswith("ctc_head."),
}
FINAL_LR_FRACTION = 0.1  # the cosine ends at 10% of the peak learning rate


def set_trainable(model: VoxLM, modules: tuple[str, ...]) -> int:
    """Let gradients reach only the named parts; return how many weights will train.

    "llm" is every LLM weight, "lora" only its adapters (names containing ``lora_``).
    """
    unknown = [m for m in modules if m not in TRAINABLE_MODULES]
    if unknown or not modules:
        raise ValueError(
            f"train_modules: unknown {unknown or 'empty list'}; "
            f"expected names among {', '.join(TRAINABLE_MODULES)}"
        )
    names = [n for n, _ in model.named_parameters()]
    for module in modules:
        if not any(TRAINABLE_MODULES[module](n) for n in names):
            why = {"ctc": "model.ctc is off", "lora": "model.use_lora is off"}.get(module, "")
            raise ValueError(
                f"train_modules names {module!r}, but the model has no such weights {why}"
            )
    # A saved model carries only what its config says can change (model._saved_prefixes):
    # training a part the config calls frozen would be lost on save, so it is refused here.
    if "encoder" in modules and model.config.freeze_encoder:
        raise ValueError(
            "train_modules names 'encoder' but model.freeze_encoder is true; set it to false"
        )
    if "llm" in modules and model.config.use_lora:
        raise ValueError(
            "train_modules names 'llm' (all LLM weights) but model.use_lora is true; "
            "train 'lora', or set model.use_lora: false for full fine-tuning"
        )
    count = 0
    for name, param in model.named_parameters():
        param.requires_grad_(any(TRAINABLE_MODULES[m](name) for m in modules))
        count += param.numel() if param.requires_grad else 0
    return count


def param_groups(model: VoxLM, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on matrices (and embeddings), none on biases and norms."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


def lr_factor(
    step: int,
    warmup_steps: int,
    total_steps: int,
    time_fraction: float = 0.0,
    rewarm_at: int = 0,
) -> float:
    """Linear warm-up to the peak, then a cosine down to FINAL_LR_FRACTION of it at the end.

    The end is the last step, or, for a phase with ``max_minutes``, the end of its time budget
    when that comes first (``time_fraction`` = share of the budget used), so a time-boxed run
    still anneals instead of stopping at its peak rate.

    ``rewarm_at`` (a phase's ``ctc_only_steps``) warms the rate up again from that step, where
    the LLM starts to train with fresh Adam statistics: started at the full rate instead, it
    learns far more slowly (measured on the demo in BENCHMARKS.md).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(1.0, max(progress, time_fraction))
    factor = FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress))
    if rewarm_at and step >= rewarm_at:
        factor *= min(1.0, (step - rewarm_at + 1) / warmup_steps)
    return factor


def phase_lr_factor(
    phase: PhaseConfig, step: int, total_steps: int, time_fraction: float = 0.0
) -> float:
    """``lr_factor`` with the phase's warm-up, and its second one where CTC-only steps end."""
    return lr_factor(step, phase.warmup_steps, total_steps, time_fraction, phase.ctc_only_steps)
