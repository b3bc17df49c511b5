"""``voxlm bench``: where the time of a transcription goes, stage by stage, and how VoxLM
compares with its peers.

Its flags come from ``BenchOptions`` and ``DecodingOptions`` (``voxlm.cli_flags``), added when
the subcommand parses or prints its help, so that building the parser imports no torch.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from voxlm.cli_flags import (
    add_decoding_flags,
    add_option_flags,
    decoding_options,
    options_from_args,
)

if TYPE_CHECKING:
    from voxlm.bench.peers import PeerRow

_HELPS = {
    "model": "a saved model directory or .pt checkpoint (default: voxlm-tiny, random)",
    "variant": "a variant name: its pretrained backbones, or with --random-weights its shape",
    "device": "cpu, cuda, cuda:1 ... (default: cpu)",
    "dtype": "float32, bfloat16 or float16 (default: float32)",
    "quantize": "int8: dynamic int8 linear layers in the LLM and encoder (CPU, float32)",
    "seconds": "length of each clip (default: 10)",
    "clips": "clips per run, decoded in batches of --batch-size (default: 8)",
    "runs": "timed runs over all the clips (default: 3)",
    "warmup": "untimed runs before them: compilation, caches, Silero VAD's JIT (default: 2)",
    "tokens_per_second": "tokens decoded per second of audio, plus 8 per window, with EOS and "
    "the stop rules off, so random weights do a trained model's work (default: 4)",
    "json": "also write the results here as JSON",
}


def bench_parser(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="time each stage of a transcription: decode, features, encoder ... DTW, words",
        description="Time the real transcription path stage by stage (audio decode, speech "
        "detection, features, encoder, projector, prefill, decoding, aligner pass, DTW, words "
        "and confidence) on synthetic FLAC clips, and print each stage's time per clip and "
        "share, RTFx, tokens/s and peak memory. Every window decodes a fixed number of tokens, "
        "so random weights do the work of trained ones: the decoding flags apply, except that "
        "--tokens-per-second sets the budget and EOS, the stop rules and the no-speech skip are "
        "off.",
    )
    p.add_later.append(_add_bench_flags)
    add_decoding_flags(p)
    p.set_defaults(run=run_bench)


def _add_bench_flags(parser: argparse.ArgumentParser) -> None:
    from voxlm.bench.stages import QUICK_SIZES, BenchOptions

    sizes = ", ".join(f"{k} {v:g}" for k, v in QUICK_SIZES.items())
    helps = {
        **_HELPS,
        "random_weights": "build --variant at its real shape with random weights (no download)",
        "peers": "also time VoxLM against its peers (Whisper's feature extractor, DTW, generate)",
        "quick": f"toy sizes ({sizes}) and the peers at toy size: a CI check under a minute",
    }
    add_option_flags(parser, BenchOptions, helps=helps)


def run_bench(args: argparse.Namespace) -> int:
    from voxlm.bench.stages import BenchOptions, format_table, run_stages

    options = options_from_args(BenchOptions, args)
    result = run_stages(options, decoding_options(args))
    print(format_table(result))
    report = result.to_dict()
    if options.peers or options.quick:
        from voxlm.bench.peers import run_peers

        rows = run_peers(quick=options.quick, device=options.device)
        print("\n" + format_peers(rows))
        report["peers"] = [row.to_dict() for row in rows]
    if options.json is not None:
        options.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


def format_peers(rows: list[PeerRow]) -> str:
    """VoxLM against its peers (``voxlm.bench.peers.PeerRow``): the comparison, the two times,
    the ratio and its target, then what was checked, on a line of its own."""
    table = [("VoxLM", "against", "VoxLM s", "peer s", "ratio", "target")]
    for r in rows:
        met = {True: "met", False: "missed", None: "not run"}[r.met]
        table.append(
            (
                r.what,
                r.baseline,
                f"{r.voxlm_seconds:.4f}",
                f"{r.baseline_seconds:.4f}",
                f"{r.ratio:.2f}",
                f"{r.target} ({met})",
            )
        )
    widths = [max(len(row[j]) for row in table) for j in range(5)]
    lines = []
    for i, row in enumerate(table):
        left = [row[j].ljust(widths[j]) for j in (0, 1)]
        right = [row[j].rjust(widths[j]) for j in (2, 3, 4)]
        lines.append("  ".join([*left, *right, row[5]]))
        if i and rows[i - 1].note:
            lines.append(f"    {rows[i - 1].note}")
    return "\n".join(lines)
