"""VoxLM: speech recognition on any audio encoder joined to any decoder-only LLM.

from voxlm import VoxLM
model = VoxLM.from_pretrained("output/models/voxlm-2b")
result = model.transcribe("speech.flac", instruction="Transcribe the audio.")
result.to_dict()  # {"text", "words": [{"word", "start", "end", "confidence"}], ...}
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from voxlm.config import (
    DataConfig,
    ModelConfig,
    OutputConfig,
    PhaseConfig,
    TrainingConfig,
    VoxLMConfig,
    get_config,
    load_config,
)

if TYPE_CHECKING:
    from voxlm.decoding import DecodingOptions, Transcript, Word
    from voxlm.model import VoxLM

    QwenSTT = VoxLM

# Names from modules that import torch and transformers load on first use (PEP 562), so that
# importing a light module of the package, such as voxlm.cli for `voxlm --help`, stays light.
_LAZY = {
    "VoxLM": ("voxlm.model", "VoxLM"),
    "QwenSTT": ("voxlm.model", "VoxLM"),  # the project's first name, kept for existing code
    "DecodingOptions": ("voxlm.decoding", "DecodingOptions"),
    "Transcript": ("voxlm.decoding", "Transcript"),
    "Word": ("voxlm.decoding", "Word"),
}

QwenSTTConfig = VoxLMConfig  # the project's first name, kept for existing configs and code

__version__ = "0.1.0"
__all__ = [
    "DataConfig",
    "DecodingOptions",
    "ModelConfig",
    "OutputConfig",
    "PhaseConfig",
    "QwenSTT",
    "QwenSTTConfig",
    "Transcript",
    "TrainingConfig",
    "VoxLM",
    "VoxLMConfig",
    "Word",
    "get_config",
    "load_config",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'voxlm' has no attribute {name!r}")
    module, attribute = _LAZY[name]
    return getattr(importlib.import_module(module), attribute)
