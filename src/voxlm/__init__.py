"""VoxLM: speech recognition on any audio encoder joined to any decoder-only LLM.

from voxlm import VoxLM
model = VoxLM.from_pretrained("output/models/voxlm-2b")
result = model.transcribe("speech.flac", instruction="Transcribe the audio.")
result.to_dict()  # {"text", "words": [{"word", "start", "end", "confidence"}], ...}
"""

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
from voxlm.decoding import DecodingOptions, Transcript, Word
from voxlm.model import VoxLM

# The project's first names, kept so that existing code and configs keep working.
QwenSTT = VoxLM
QwenSTTConfig = VoxLMConfig

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
