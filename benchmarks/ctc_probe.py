"""How fast does the demo's encoder learn to spell on its own? CTC alone, fixed wall time.

Trains only the encoder and CTC head of `voxlm-tiny` (the LLM never runs, as in the demo's
CTC-only first steps) and prints the greedy CTC character and word error rates on dev clips
every 100 steps. Variants (learning rate, batch size, bf16 autocast, encoder depth, span CTC)
are compared by error at equal steps and equal minutes; run one at a time, on an otherwise idle
machine. With several seeds it also reports, per seed, the step at which CTC left its all-blank
plateau (mean loss of the last 20 steps below 2.0), which is what span CTC is for.

    python benchmarks/ctc_probe.py --train demo/data/train.jsonl --dev demo/data/dev.jsonl \
        [--minutes 2.7] [--lr 3e-3] [--batch-size 16] [--bf16] [--layers 3] \
        [--span-ctc-weight 1.0 --span-ctc-steps 300] [--seeds 0,1,2,3]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import time

import torch

from voxlm.data.batching import collate
from voxlm.data.manifest import UtteranceDataset
from voxlm.demo import DemoOptions, demo_config
from voxlm.evaluate import char_error_rate, word_error_rate
from voxlm.model import VoxLM

PLATEAU_LOSS = 2.0  # all blanks plus the letters' frequencies: ~2.6 per token


@torch.no_grad()
def greedy_ctc(model: VoxLM, items: list[dict], batch_size: int = 25) -> list[str]:
    """Best-path CTC transcripts: the most likely symbol per frame, repeats merged, blanks cut."""
    model.eval()
    blank = model.ctc_head.out_features - 1
    texts = []
    for start in range(0, len(items), batch_size):
        batch = collate(items[start : start + batch_size])
        audio = model.encode(batch["audio"], batch["audio_lengths"])
        best = audio.ctc_log_probs.argmax(-1)  # [B, T]
        for row, n in zip(best, audio.mask.sum(1).tolist(), strict=True):
            path = torch.unique_consecutive(row[:n])
            texts.append(model.tokenizer.decode(path[path != blank].tolist()).strip())
    model.train()
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", required=True)
    parser.add_argument("--dev", required=True)
    parser.add_argument("--minutes", type=float, default=2.7)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=150)
    parser.add_argument("--bf16", action="store_true", help="CPU bf16 autocast")
    parser.add_argument("--layers", type=int, default=3, help="encoder layers")
    parser.add_argument("--n-dev", type=int, default=100)
    parser.add_argument("--span-ctc-weight", type=float, default=0.0)
    parser.add_argument("--span-ctc-steps", type=int, default=300)
    parser.add_argument("--seeds", default="0", help="comma-separated; one run per seed")
    args = parser.parse_args()

    train = UtteranceDataset.from_manifest(args.train)
    dev_set = UtteranceDataset.from_manifest(args.dev)
    dev = [dev_set[i] for i in range(min(args.n_dev, len(dev_set)))]
    items = [train[i] for i in range(len(train))]  # in memory: the probe times the model only
    items = sorted((x for x in items if x is not None), key=lambda x: len(x["audio"]))
    left = {seed: probe(args, items, dev, seed) for seed in map(int, args.seeds.split(","))}
    print("left the plateau at step:", left)


def probe(args: argparse.Namespace, items: list[dict], dev: list[dict], seed: int) -> int | None:
    """Train one encoder from ``seed``; return the step at which it left the plateau, if it did."""
    torch.manual_seed(seed)
    random.seed(seed)
    config = demo_config(DemoOptions()).model
    encoder = {**config.audio_encoder_config, "encoder_layers": args.layers}
    model = VoxLM.from_config(dataclasses.replace(config, audio_encoder_config=encoder))
    params = [*model.encoder.parameters(), *model.ctc_head.parameters()]
    optimizer = torch.optim.AdamW(params, args.lr, weight_decay=0.01)
    batches = [items[i : i + args.batch_size] for i in range(0, len(items), args.batch_size)]
    print(f"seed {seed}: {sum(p.numel() for p in params) / 1e6:.2f} M weights, {len(items)} clips")

    step, trained_s, recent, left = 0, 0.0, [], None
    while trained_s < args.minutes * 60:
        random.shuffle(batches)
        for chunk in batches:
            started = time.monotonic()
            for group in optimizer.param_groups:
                group["lr"] = args.lr * min(1.0, (step + 1) / args.warmup)
            batch = collate(chunk)
            span_weight = args.span_ctc_weight * max(0.0, 1 - step / args.span_ctc_steps)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                audio = model.encode(batch["audio"], batch["audio_lengths"])
                texts = model.tokenize(batch["texts"])
                ctc = model._ctc_loss(audio, texts)
                loss = ctc
                if span_weight:
                    loss = ctc + span_weight * model._span_ctc_loss(audio, texts, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            trained_s += time.monotonic() - started
            recent = [*recent[-19:], ctc.item()]
            if left is None and len(recent) == 20 and sum(recent) / 20 < PLATEAU_LOSS:
                left = step
            if step % 100 == 0:
                hyps = greedy_ctc(model, dev)
                refs = [x["text"] for x in dev]
                print(
                    f"step {step}  {trained_s / 60:.2f} min  CTC loss {ctc.item():.3f}  "
                    f"dev CER {char_error_rate(refs, hyps):.3f}  WER {word_error_rate(refs, hyps):.3f}",
                    flush=True,
                )
            if trained_s >= args.minutes * 60:
                break
    return left


if __name__ == "__main__":
    main()
