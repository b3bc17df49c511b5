"""Training: the phase loop, resumable checkpoints and training logs."""

from voxlm.training.trainer import PhaseResult, set_trainable, train_phase

__all__ = ["PhaseResult", "set_trainable", "train_phase"]
