"""Speed measurements, each a ratio against a baseline run in the same process.

1. Short clips: the Whisper encoder on a clip with its positional table sliced (what VoxLM does)
   versus the same clip padded to the 30 s window (what Whisper's own forward requires).
   Shape-true random-initialised encoders: whisper-tiny and whisper-small sizes.
2. Batched decoding: `transcribe` on N clips one at a time versus as one list (batches of 8).

    python benchmarks/speed.py [--model DIR] [--clips 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np
import torch
from transformers import WhisperConfig

from voxlm.decoding import DecodingOptions
from voxlm.encoder import AudioEncoder
from voxlm.model import VoxLM

SIZES = {  # the encoder halves of openai/whisper-tiny and openai/whisper-small
    "whisper-tiny": {
        "d_model": 384,
        "encoder_layers": 4,
        "encoder_attention_heads": 6,
        "encoder_ffn_dim": 1536,
    },
    "whisper-small": {
        "d_model": 768,
        "encoder_layers": 12,
        "encoder_attention_heads": 12,
        "encoder_ffn_dim": 3072,
    },
}


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@torch.no_grad()
def encoder_window(seconds: float, repeats: int, sizes: tuple[str, ...] = tuple(SIZES)) -> None:
    for name in sizes:
        size = SIZES[name]
        encoder = AudioEncoder.from_config(WhisperConfig(num_mel_bins=80, **size)).eval()
        clip = torch.randn(1, int(seconds * 16000)) * 0.1
        padded = torch.nn.functional.pad(clip, (0, 30 * 16000 - clip.shape[1]))
        lengths = torch.tensor([clip.shape[1]])
        sliced_s = best_of(partial(encoder, clip, lengths), repeats)
        full_s = best_of(partial(encoder, padded, lengths), repeats)
        print(
            f"{name:14s} {seconds:.0f} s clip: sliced {sliced_s * 1000:7.1f} ms, padded to 30 s "
            f"{full_s * 1000:7.1f} ms, speed-up x{full_s / sliced_s:.1f}"
        )


def batched_decoding(model_path: str | None, clips: int, repeats: int) -> None:
    model = VoxLM.from_pretrained(model_path or "voxlm-tiny").eval()
    rng = np.random.default_rng(0)
    # Harmonic "speech-like" clips of 1.5-3.5 s; with a trained model use real clips instead.
    audio = []
    for _ in range(clips):
        t = np.arange(int(rng.uniform(1.5, 3.5) * 16000)) / 16000
        audio.append(
            (0.1 * np.sin(2 * np.pi * 150 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
        )
    options = DecodingOptions(min_confidence=0, no_speech_check=False, batch_size=8)
    one = best_of(
        lambda: [model.transcribe(a, sample_rate=16000, options=options) for a in audio], repeats
    )
    batch = best_of(lambda: model.transcribe(audio, sample_rate=16000, options=options), repeats)
    seconds = sum(len(a) for a in audio) / 16000
    print(
        f"transcribe {clips} clips ({seconds:.0f} s audio): one at a time {one:.2f} s "
        f"(RTF {one / seconds:.3f}), batches of 8 {batch:.2f} s (RTF {batch / seconds:.3f}), "
        f"speed-up x{one / batch:.1f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default=None, help="a trained model directory (default: voxlm-tiny, random)"
    )
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="whisper-tiny's encoder on a 2 s clip only (a smoke run)",
    )
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    sizes = ("whisper-tiny",) if args.quick else tuple(SIZES)
    for seconds in (2.0,) if args.quick else (2.0, 5.0):
        encoder_window(seconds, args.repeats, sizes)
    batched_decoding(args.model, args.clips, args.repeats)


if __name__ == "__main__":
    main()
