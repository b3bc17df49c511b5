"""Can a small CTC head on frozen, pretrained Whisper features learn to spell from synthetic
speech, and does what it learns carry over to real human speech?

The cheapest way to teach a pretrained encoder + LLM to listen is to first teach the encoder's
output to spell without the LLM: the encoder runs once per clip (its outputs are cached), and
only a small head trains. This measures that first step: the character CTC head of
voxlm.spelling (what `model.ctc_units: characters` trains) over Whisper's final encoder
states, trained on espeak-ng speech for a fixed number of epochs, decoded greedily on the
synthetic test split and on the English clips of ../shared/real-speech (never trained or tuned
on). Run on an idle machine.

    python benchmarks/whisper_ctc_probe.py --data demo/data [--encoder openai/whisper-base]
        [--epochs 8] [--real ../shared/real-speech/manifest.jsonl] [--cache DIR]
        [--dropout 0.2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import torch
from torch import nn

from voxlm.audio import load_audio
from voxlm.data.manifest import Utterance, read_manifest
from voxlm.encoder import AudioEncoder
from voxlm.evaluate import char_error_rate, word_error_rate
from voxlm.spelling import ALPHABET, SpellingHead, read_spelling, spell

REAL = Path(__file__).resolve().parents[2] / "shared" / "real-speech" / "manifest.jsonl"


@torch.no_grad()
def encode(
    encoder: AudioEncoder, utterances: list[Utterance], batch: int = 16
) -> list[torch.Tensor]:
    """Each utterance's encoder states [T, D] (fp16, to hold a corpus in memory)."""
    states: list[torch.Tensor] = []
    for i in range(0, len(utterances), batch):
        waves = [torch.from_numpy(load_audio(u.audio_path)) for u in utterances[i : i + batch]]
        lengths = torch.tensor([len(w) for w in waves])
        audio = nn.utils.rnn.pad_sequence(waves, batch_first=True)
        hidden, mask = encoder(audio, lengths)
        states += [h[m].half() for h, m in zip(hidden, mask, strict=True)]
    return states


def encode_cached(
    encoder: AudioEncoder, name: str, utterances: list[Utterance], cache: Path | None
) -> list[torch.Tensor]:
    """`encode`, kept in `cache` under the encoder's name and the clips' paths."""
    if cache is None:
        return encode(encoder, utterances)
    key = hashlib.sha256("\n".join([name, *(u.audio_path for u in utterances)]).encode())
    path = cache / f"{key.hexdigest()[:16]}.pt"
    if path.is_file():
        return torch.load(path)
    states = encode(encoder, utterances)
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(states, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)
    return states


def english_clips(manifest: Path) -> list[Utterance]:
    """The English utterances of a manifest (a line without a language counts as English)."""
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    english = {r["id"] for r in rows if r.get("language", "en") == "en"}
    return [u for u in read_manifest(manifest) if u.id in english]


def batches(states: list[torch.Tensor], targets: list[list[int]], size: int, seed: int):
    order = torch.randperm(len(states), generator=torch.Generator().manual_seed(seed)).tolist()
    for i in range(0, len(order), size):
        idx = order[i : i + size]
        yield (
            nn.utils.rnn.pad_sequence([states[j].float() for j in idx], batch_first=True),
            torch.tensor([len(states[j]) for j in idx]),
            [targets[j] for j in idx],
        )


def train(head: SpellingHead, states, targets, epochs: int, batch: int = 32) -> list[float]:
    """AdamW at 1e-3 with a cosine decay; returns the mean CTC loss of each epoch."""
    steps = epochs * -(-len(states) // batch)
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    ctc = nn.CTCLoss(blank=len(ALPHABET), zero_infinity=True)
    curve = []
    for epoch in range(epochs):
        head.train()
        losses = []
        for x, lengths, ys in batches(states, targets, batch, seed=epoch):
            logp = head(x).log_softmax(-1).transpose(0, 1)  # [T, B, C]
            flat = torch.tensor([c for y in ys for c in y])
            loss = ctc(logp, flat, lengths, torch.tensor([len(y) for y in ys]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        curve.append(sum(losses) / len(losses))
        print(f"epoch {epoch + 1}: CTC loss {curve[-1]:.3f}", flush=True)
    head.eval()
    return curve


@torch.no_grad()
def greedy(head: SpellingHead, states: list[torch.Tensor]) -> list[str]:
    return [read_spelling(head(s.float()[None])[0].argmax(-1).tolist()) for s in states]


def scores(head: SpellingHead, states, utterances: list[Utterance], shown: int = 3) -> dict:
    """Pooled WER and CER, and the first `shown` clips' hypotheses with their own CER."""
    hyps = greedy(head, states)
    refs = [u.text for u in utterances]
    clips = list(zip(utterances, hyps, strict=True))[:shown]
    return {
        "wer": word_error_rate(refs, hyps),
        "cer": char_error_rate(refs, hyps),
        "examples": [
            {"id": u.id, "ref": u.text, "hyp": h, "cer": char_error_rate([u.text], [h])}
            for u, h in clips
        ],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="train/test manifests' folder")
    parser.add_argument("--encoder", default="openai/whisper-base")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--limit", type=int, default=None, help="only N training utterances")
    parser.add_argument("--real", type=Path, default=REAL)
    parser.add_argument("--cache", type=Path, default=None, help="keep encoder states here")
    parser.add_argument("--dropout", type=float, default=0.0, help="channel dropout on states")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    encoder = AudioEncoder.from_pretrained(args.encoder).eval()
    train_set = read_manifest(args.data / "train.jsonl")[: args.limit]
    test_set = read_manifest(args.data / "test.jsonl")
    real = english_clips(args.real)
    started = time.monotonic()
    train_states, test_states, real_states = (
        encode_cached(encoder, args.encoder, s, args.cache) for s in (train_set, test_set, real)
    )
    encode_minutes = (time.monotonic() - started) / 60
    head = SpellingHead(train_states[0].shape[-1], dropout=args.dropout)
    started = time.monotonic()
    curve = train(head, train_states, [spell(u.text) for u in train_set], args.epochs)
    result = {
        "encoder": args.encoder,
        "dropout": args.dropout,
        "train_utterances": len(train_set),
        "train_audio_minutes": sum(u.duration for u in train_set) / 60,
        "encode_minutes": encode_minutes,
        "head_train_minutes": (time.monotonic() - started) / 60,
        "curve": curve,
        "synthetic_test": scores(head, test_states, test_set),
        "real_english": scores(head, real_states, real, shown=len(real)),
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
