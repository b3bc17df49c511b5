"""Training forward and generation agree: a model that memorises one clip must say it back."""

import torch
from conftest import tiny_config, tone

from voxlm.decoding import DecodingOptions
from voxlm.model import VoxLM
from voxlm.results import WordTiming

TEXT = "hello world"
STEPS = 300


def test_overfit_one_clip_then_transcribe_it_exactly():
    torch.manual_seed(0)
    model = VoxLM.from_config(tiny_config())
    clip = tone(1.0)
    batch = {
        "audio": torch.from_numpy(clip)[None],
        "audio_lengths": torch.tensor([len(clip)]),
        "texts": [TEXT],
        "words": [[WordTiming("hello", 0.1, 0.5), WordTiming("world", 0.5, 0.9)]],
    }
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(STEPS):
        out = model(batch, ce_weight=1.0, ctc_weight=0.5, alignment_weight=0.2)
        first = first if first is not None else out.losses["ce"]
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    assert out.losses["ce"] < first / 50, (first, out.losses)
    model.eval()
    result = model.transcribe(clip, sample_rate=16000, options=DecodingOptions(vad="energy"))
    assert result.text == TEXT and result.stop_reason == "eos"
    assert [w.word for w in result.words] == ["hello", "world"]
    assert all(w.confidence > 0.9 for w in result.words)
