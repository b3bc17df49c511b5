"""Dynamic int8 quantisation of a model's linear layers, for faster inference on a CPU.

Each ``nn.Linear`` of the LLM and of the audio encoder keeps its weights in int8 (one scale per
tensor) and quantises its input on the fly at every call (PyTorch's dynamic quantisation, on
fbgemm / oneDNN kernels): the weights the decoder reads at every token shrink fourfold, and the
matrix products run in int8. The projector, the aligner and the CTC head stay in float32: they
are small, and the aligner's attention decides the word times.

``torch.ao.quantization`` warns that it is deprecated in favour of torchao; as of torch 2.13 it
is still what runs eagerly on a CPU with no extra package, so its warnings are held back here.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from voxlm.model import VoxLM

QUANTIZATIONS = ("int8",)


def quantize(model: VoxLM, method: str) -> VoxLM:
    """``model`` with its LLM's and encoder's linear layers quantised in place (``method``:
    int8). For inference only: quantised layers do not train, and LoRA adapters are merged."""
    if method not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}, got {method!r}")
    if model.device.type != "cpu":
        raise ValueError(
            f"int8 dynamic quantisation runs on the CPU, the model is on {model.device}"
        )
    if model.projector.down.weight.dtype != torch.float32:
        raise ValueError(
            f"int8 dynamic quantisation needs a float32 model, got "
            f"{model.projector.down.weight.dtype}"
        )
    if hasattr(model.llm, "merge_and_unload"):
        # LoRA adapters (peft) are merged into their layers first: the same outputs, and a
        # quantised layer has no float weight left for an adapter to add to.
        model.llm = model.llm.merge_and_unload()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*", category=UserWarning)
        for part in (model.llm, model.encoder):
            torch.ao.quantization.quantize_dynamic(part, {nn.Linear}, torch.qint8, inplace=True)
    return model.eval()
