"""The one rule for the dtype of softmaxes, log-probabilities and losses."""

from __future__ import annotations

import torch


def widen(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32 if it is a narrower float (bfloat16, float16), else ``x`` as it is.

    Softmax tails and loss sums need float32's range, so half-precision models compute them in
    float32. A float64 model keeps float64 throughout: float32 kernels round differently from
    one CPU to another, and training steps grow that into visibly different weights.
    """
    return x.float() if x.is_floating_point() and x.element_size() < 4 else x
