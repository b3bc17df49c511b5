"""Does a trained model read its audio? Transcript cross-entropy with each utterance's own audio
versus with another utterance's audio, on the same transcripts.

A model that writes what it hears scores far worse on the wrong audio; a model that has only
learned the language of its training text scores the same on both. WER cannot tell these apart
while it is near 100%, so this is the number to watch when a from-scratch recipe does not learn.

    python benchmarks/listening.py MODEL_DIR MANIFEST [--n 64] [--batch-size 16]
"""

from __future__ import annotations

import argparse

import torch

from voxlm.data.batching import collate
from voxlm.data.manifest import UtteranceDataset, read_manifest
from voxlm.model import VoxLM


@torch.no_grad()
def listening_gap(model: VoxLM, items: list[dict], batch_size: int) -> dict[str, float]:
    """Mean CE (nats per token) with the right audio, with audio rotated by one utterance."""
    totals = {"own_audio": 0.0, "other_audio": 0.0}
    for start in range(0, len(items), batch_size):
        batch = collate(items[start : start + batch_size])
        n = len(batch["texts"])
        totals["own_audio"] += float(model(batch, ce_weight=1.0).loss) * n
        rotate = [(i + 1) % n for i in range(n)]
        other = {**batch, "audio": batch["audio"][rotate]}
        other["audio_lengths"] = batch["audio_lengths"][rotate]
        totals["other_audio"] += float(model(other, ce_weight=1.0).loss) * n
    return {k: v / len(items) for k, v in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("manifest")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    model = VoxLM.from_pretrained(args.model).eval()
    dataset = UtteranceDataset(read_manifest(args.manifest)[: args.n])
    items = [x for x in (dataset[i] for i in range(len(dataset))) if x is not None]
    result = listening_gap(model, items, args.batch_size)
    gap = result["other_audio"] - result["own_audio"]
    print(
        f"{len(items)} utterances: CE own audio {result['own_audio']:.3f}, "
        f"other audio {result['other_audio']:.3f}, gap {gap:.3f} nats/token"
    )


if __name__ == "__main__":
    main()
