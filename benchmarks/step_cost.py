"""What does one training step of the demo's model cost, with and without the LLM?

The demo's phase 1 runs on a wall clock, so the split between CTC-only steps (encoder and CTC
head) and joint steps (the LLM too) decides how many steps each part gets. This times both
kinds on the same batches of the demo corpus, forward, backward and AdamW, in one process, and
prints their ratio. Batches are length-sorted like the trainer's buckets. Run on an idle machine.

    python benchmarks/step_cost.py --train demo/data/train.jsonl [--batches 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from voxlm.data.batching import collate
from voxlm.data.manifest import UtteranceDataset, read_manifest
from voxlm.demo import DemoOptions, demo_config
from voxlm.model import VoxLM


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", required=True, help="a training manifest (JSONL)")
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    config = demo_config(DemoOptions())
    phase = config.training.phase1
    model = VoxLM.from_config(config.model).train()
    n = args.batches * args.batch_size
    # The middle of the length distribution: typical clips, little padding, as the buckets give.
    utterances = sorted(read_manifest(args.train)[: 4 * n], key=lambda u: u.duration)[n : 2 * n]
    data = UtteranceDataset(utterances)
    batches = [
        collate([data[i] for i in range(j, j + args.batch_size)])
        for j in range(0, n, args.batch_size)
    ]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def seconds_per_step(**weights: float) -> float:
        start = time.perf_counter()
        for batch in batches:
            model(batch, **weights).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        return (time.perf_counter() - start) / len(batches)

    ctc_only = {"ce_weight": 0.0, "ctc_weight": phase.ctc_weight}
    joint = {
        "ce_weight": 1.0,
        "ctc_weight": phase.ctc_weight,
        "alignment_weight": phase.alignment_weight,
    }
    seconds_per_step(**ctc_only)  # warm-up
    for round_ in range(args.rounds):
        a, b = seconds_per_step(**ctc_only), seconds_per_step(**joint)
        print(f"round {round_}: CTC-only {a:.3f} s/step, joint {b:.3f} s/step, ratio {b / a:.2f}")


if __name__ == "__main__":
    main()
