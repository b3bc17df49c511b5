"""Can voxlm-tiny's LLM learn to copy a transcript it is shown in place of audio?

The LLM alone is trained on [source][transcript], where the source is the transcript's own
character embeddings, one or two characters summed per position (like 80 ms audio embeddings
holding ~1.3 characters) — perfectly clean "audio". A model that copies scores far better with
its own source than with another utterance's; the gap is printed as training goes.

With ``--aligned-positions`` source position g takes the position id round(4g/3) (the mean
number of characters before it) and transcript character j the id j, as ``model.ctc_positions``
does with CTC's counts, so source and transcript meet at relative position ~0.

With ``--guide-weight W`` the first two heads of the middle layer are also trained to attend,
from the position predicting each character, to the source position holding it (guided
attention); ``--guide-window K`` accepts K positions either side of it as correct.

    python benchmarks/copy_probe.py --manifest DIR/train.jsonl --dev DIR/dev.jsonl \
        [--steps 300] [--aligned-positions] [--guide-weight 1.0] [--guide-window 0]
"""

from __future__ import annotations

import argparse
import random
import time

import torch
from torch import nn

from voxlm.config import get_config
from voxlm.data.manifest import read_manifest
from voxlm.model import VoxLM


def make_batch(
    model: VoxLM, texts: list[str], rng: random.Random, rotate: bool = False, aligned: bool = False
):
    """Left-padded [source][transcript + EOS]: embeds, mask, positions, labels, and for every
    position predicting a transcript character the index of its source position (-1 elsewhere)."""
    embed = model.llm.get_input_embeddings()
    tok = model.tokenizer
    ids = [tok(t, add_special_tokens=False).input_ids + [tok.eos_token_id] for t in texts]
    sources, owners = [], []
    for row in ids:
        chars = embed(torch.tensor(row[:-1]))
        groups, owner, j = [], [], 0
        while j < len(chars):
            k = rng.choice([1, 1, 2])
            groups.append(chars[j : j + k].sum(0))
            owner += [len(groups) - 1] * len(chars[j : j + k])
            j += k
        sources.append(torch.stack(groups))
        owners.append(owner)
    if rotate:
        sources = sources[1:] + sources[:1]
    length = max(len(s) + len(r) for s, r in zip(sources, ids, strict=True))
    b, e = len(ids), sources[0].shape[-1]
    embeds = torch.zeros(b, length, e)
    mask = torch.zeros(b, length, dtype=torch.long)
    labels = torch.full((b, length), -100)
    positions = torch.zeros(b, length, dtype=torch.long)
    target = torch.full((b, length), -1)
    for i, (src, row, owner) in enumerate(zip(sources, ids, owners, strict=True)):
        start = length - len(src) - len(row)
        text0 = start + len(src)
        embeds[i, start:] = torch.cat([src, embed(torch.tensor(row))])
        mask[i, start:] = 1
        labels[i, text0:] = torch.tensor(row)
        if aligned:
            positions[i, start:text0] = (torch.arange(len(src)) * 4 / 3).round().long()
            positions[i, text0:] = torch.arange(len(row))
        else:
            positions[i, start:] = torch.arange(length - start)
        if not rotate:
            for j, o in enumerate(owner):  # position text0 - 1 + j predicts character j
                target[i, text0 - 1 + j] = start + o
    return embeds, mask, positions, labels, target


def losses(model: VoxLM, batch, guide: bool, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    embeds, mask, positions, labels, target = batch
    out = model.llm(
        inputs_embeds=embeds,
        attention_mask=mask,
        position_ids=positions,
        output_attentions=guide,
        use_cache=False,
    )
    ce = nn.functional.cross_entropy(
        out.logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100
    )
    if not guide:
        return ce, ce.new_zeros(())
    layer = model.llm.config.num_hidden_layers // 2
    attn = out.attentions[layer][:, :2]  # [B, 2, L, L]
    mass = 0.0
    for d in range(-window, window + 1):
        index = (target + d).clamp(min=0, max=attn.shape[-1] - 1)
        mass = mass + attn.gather(-1, index[:, None, :, None].expand(-1, 2, -1, 1))[..., 0]
    valid = (target >= 0)[:, None].expand_as(mass)
    return ce, -mass[valid].clamp(min=1e-6).log().mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--dev", required=True)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--aligned-positions", action="store_true")
    parser.add_argument("--guide-weight", type=float, default=0.0)
    parser.add_argument("--guide-window", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    model = VoxLM.from_config(get_config("voxlm-tiny").model)
    guide = args.guide_weight > 0
    if guide:
        model.llm.set_attn_implementation("eager")  # the implementation that returns weights
    train = [u.text for u in read_manifest(args.manifest)]
    dev = [u.text for u in read_manifest(args.dev)][:64]
    optimizer = torch.optim.AdamW(model.llm.parameters(), lr=args.learning_rate)
    started = time.monotonic()
    for step in range(1, args.steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = args.learning_rate * min(1.0, step / 50)
        ce, guided = losses(
            model,
            make_batch(
                model, rng.sample(train, args.batch_size), rng, aligned=args.aligned_positions
            ),
            guide,
            args.guide_window,
        )
        optimizer.zero_grad()
        (ce + args.guide_weight * guided).backward()
        nn.utils.clip_grad_norm_(model.llm.parameters(), 1.0)
        optimizer.step()
        if step % 50 == 0:
            with torch.no_grad():
                own = losses(
                    model,
                    make_batch(model, dev, random.Random(1), aligned=args.aligned_positions),
                    False,
                    0,
                )[0]
                other = losses(
                    model,
                    make_batch(model, dev, random.Random(1), True, args.aligned_positions),
                    False,
                    0,
                )[0]
            print(
                f"step {step}: dev CE own source {float(own):.3f}, other source "
                f"{float(other):.3f}, gap {float(other - own):.3f} "
                f"({time.monotonic() - started:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
