import dataclasses

import pytest
import torch
from conftest import tiny_config, tone
from torch import nn

from voxlm import DecodingOptions, VoxLM
from voxlm.cli import main
from voxlm.quantize import quantize


def _linears(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if type(m) is nn.Linear]


@pytest.mark.parametrize("lora", [False, True])
def test_int8_keeps_the_llm_close_and_transcribes(lora):
    model = VoxLM.from_config(dataclasses.replace(tiny_config(), use_lora=lora)).eval()
    audio = torch.from_numpy(tone(1.0))[None]
    features = model.encode(audio, torch.tensor([audio.shape[1]]))
    seq = model.assemble(features, [model.prompt()], [[]])
    with torch.no_grad():
        _, before = model.prefill(seq)
        quantize(model, "int8")
        _, after = model.prefill(seq)
    assert not _linears(model.llm) and not _linears(model.encoder)
    assert _linears(model.projector) and _linears(model.aligner)  # these stay float32
    assert (after - before).abs().max() < 0.05 * before.abs().max()
    options = DecodingOptions(vad="energy", min_confidence=0, max_tokens_per_second=4)
    assert model.transcribe(tone(1.0), sample_rate=16000, options=options).audio_duration == 1.0


def test_int8_is_refused_where_it_cannot_run():
    model = VoxLM.from_config(tiny_config()).eval()
    with pytest.raises(ValueError, match="int4"):
        quantize(model, "int4")
    with pytest.raises(ValueError, match="float32"):
        quantize(model.to(torch.bfloat16), "int8")


def test_transcribe_quantize_flag(wav_file, capsys):
    argv = ["transcribe", str(wav_file), "--quantize", "int8", "--min-confidence", "0"]
    assert main(argv) == 0
    assert '"audio_duration": 1.5' in capsys.readouterr().out
