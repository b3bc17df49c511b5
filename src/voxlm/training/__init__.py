"""Training: the phase loop, resumable checkpoints and training logs."""

from voxlm.training.optimizer import set_trainable
from voxlm.training.trainer import PhaseResult, train_phase

__all__ = ["PhaseResult", "set_trainable", "train_phase"]
