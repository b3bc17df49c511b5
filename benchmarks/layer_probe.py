"""Which of Whisper's encoder layers does a character head spell real speech best from?

`whisper_ctc_probe.py`'s head and training on the states after chosen encoder layers: one
layer alone (`L6` the final, layer-normed output; `L5` the fifth layer's raw output), or a
learned softmax-weighted sum of several, each layer-normed first (`mix3+4+5+6`, the SUPERB
recipe). Scored greedily on the corpus's test split and the English clips of
../shared/real-speech (never trained or tuned on). Every layer of every clip is held in memory
(fp16): ~1.2 MB a clip of word strings for Whisper base.

    python benchmarks/layer_probe.py --data data/p-wide --limit 3000 --epochs 4 \
        --heads L6,mix3+4+5+6 [--encoder openai/whisper-base]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import torch
from torch import nn

from voxlm.audio import load_audio
from voxlm.data.manifest import Utterance, read_manifest
from voxlm.encoder import AudioEncoder
from voxlm.spelling import SpellingHead, spell


def _probe():
    """whisper_ctc_probe.py beside this file (benchmarks/ is not a package): its head's
    training and scoring."""
    path = Path(__file__).with_name("whisper_ctc_probe.py")
    spec = importlib.util.spec_from_file_location("whisper_ctc_probe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


probe = _probe()


@torch.no_grad()
def layer_states(
    encoder: AudioEncoder, utterances: list[Utterance], batch: int = 16
) -> list[torch.Tensor]:
    """Each utterance's states after every encoder layer [T, L, D] (fp16), the last one
    layer-normed as the encoder returns it: the encoder's own pass, each layer's output
    caught on its way."""
    layers = encoder.backbone.layers
    caught: list[torch.Tensor] = []
    hooks = [layer.register_forward_hook(lambda m, i, o: caught.append(o)) for layer in layers]
    out: list[torch.Tensor] = []
    try:
        for i in range(0, len(utterances), batch):
            waves = [torch.from_numpy(load_audio(u.audio_path)) for u in utterances[i : i + batch]]
            lengths = torch.tensor([len(w) for w in waves])
            caught.clear()
            final, mask = encoder(nn.utils.rnn.pad_sequence(waves, batch_first=True), lengths)
            stacked = torch.stack([*caught[:-1], final], 2)  # [B, T, L, D]
            out += [s[m].half() for s, m in zip(stacked, mask, strict=True)]
    finally:
        for hook in hooks:
            hook.remove()
    return out


class LayerMix(nn.Module):
    """A softmax-weighted sum of chosen layers (each layer-normed) into the spelling head."""

    def __init__(self, layers: list[int], dim: int) -> None:
        super().__init__()
        self.layers = [i - 1 for i in layers]
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.weights = nn.Parameter(torch.zeros(len(layers)))
        self.head = SpellingHead(dim, dropout=0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, L, D]
        x = self.norm(x[:, :, self.layers])
        return self.head((x * self.weights.softmax(0)[:, None]).sum(2))


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--encoder", default="openai/whisper-base")
    parser.add_argument("--limit", type=int, default=None, help="only N training utterances")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--heads", default="L6,mix3+4+5+6", help="comma-separated, see above")
    parser.add_argument("--real", type=Path, default=probe.REAL)
    args = parser.parse_args(argv)

    encoder = AudioEncoder.from_pretrained(args.encoder).eval()
    train_set = read_manifest(args.data / "train.jsonl")[: args.limit]
    test_set = read_manifest(args.data / "test.jsonl")
    real = probe.english_clips(args.real)
    started = time.monotonic()
    states = [layer_states(encoder, s) for s in (train_set, test_set, real)]
    print(f"encoding: {(time.monotonic() - started) / 60:.1f} min", flush=True)
    targets = [spell(u.text) for u in train_set]
    results = []
    for name in args.heads.split(","):
        torch.manual_seed(0)
        if name.startswith("L"):
            layer = int(name[1:]) - 1
            head: nn.Module = SpellingHead(encoder.hidden_size, dropout=0.2)
            train_x, test_x, real_x = ([x[:, layer] for x in s] for s in states)
        else:
            head = LayerMix([int(k) for k in name[3:].split("+")], encoder.hidden_size)
            train_x, test_x, real_x = states
        started = time.monotonic()
        probe.train(head, train_x, targets, args.epochs)
        result = {
            "head": name,
            "minutes": (time.monotonic() - started) / 60,
            "synthetic_test": probe.scores(head, test_x, test_set, shown=0),
            "real_english": probe.scores(head, real_x, real, shown=0),
        }
        if isinstance(head, LayerMix):
            result["layer_weights"] = head.weights.softmax(0).tolist()
        print(json.dumps(result), flush=True)
        results.append(result)
    return results


if __name__ == "__main__":
    main()
