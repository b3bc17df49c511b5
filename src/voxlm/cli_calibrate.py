"""``voxlm calibrate``: fit a saved model's word-confidence calibration on a dev set.

Transcribes the dev utterances with the decoding flags given (calibrate with the decoding you
transcribe with: the beam and ``confidence_temperature`` change the raw scores), fits the map
(``voxlm.calibration``), writes ``calibration.json`` into the model directory and a reliability
diagram before and after, and prints the bins, ECE, Brier score and AUROC. Building the parser
imports neither torch nor the library (``voxlm --help`` stays instant).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from voxlm.cli_flags import add_decoding_flags, decoding_options

if TYPE_CHECKING:
    from voxlm.calibration import Calibration, CalibrationReport, ReliabilityBin

RAW_PLOT = "reliability_raw.png"
CALIBRATED_PLOT = "reliability.png"


def calibrate_parser(sub) -> None:
    p = sub.add_parser(
        "calibrate",
        help="fit a model's word-confidence calibration on a dev set (calibration.json)",
        description="Transcribe a dev manifest, mark each word right or wrong against its "
        "reference and fit the map from raw word confidence to the probability of being right "
        "(Platt or isotonic, whichever has the lower cross-validated ECE, or none if neither "
        "beats the raw score). Writes MODEL/calibration.json, which transcription then "
        "applies (--no-calibrate turns it off), and reliability diagrams before and after.",
    )
    p.add_argument("--model", type=Path, required=True, help="a saved model directory")
    p.add_argument(
        "--data", type=Path, required=True, help="the dev .jsonl manifest or LibriSpeech folder"
    )
    p.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help=f"where {RAW_PLOT} and {CALIBRATED_PLOT} go (default: the model directory)",
    )
    p.add_argument("--limit", type=int, default=None, help="only the first N utterances")
    p.add_argument("--device", default="cpu")
    add_decoding_flags(p)
    p.set_defaults(run=run_calibrate)


def run_calibrate(args: argparse.Namespace) -> int:
    from voxlm.calibration import fit_calibration, plot_reliability
    from voxlm.data.librispeech import read_librispeech
    from voxlm.data.manifest import read_manifest
    from voxlm.model import VoxLM

    if not args.model.is_dir():
        raise ValueError(f"{args.model}: not a saved model directory (calibration.json goes in it)")
    data = read_manifest(args.data) if args.data.is_file() else read_librispeech(args.data)
    model = VoxLM.from_pretrained(args.model).to(args.device)
    options = decoding_options(args, model.decoding)
    calibration, report = fit_calibration(model, data[: args.limit], options)
    calibration.save(args.model)
    out = args.output_dir or args.model
    out.mkdir(parents=True, exist_ok=True)
    plot_reliability(report.raw.bins, out / RAW_PLOT, f"raw confidence: ECE {report.raw.ece:.3f}")
    plot_reliability(
        report.calibrated.bins,
        out / CALIBRATED_PLOT,
        f"{calibration.method}, cross-validated: ECE {report.calibrated.ece:.3f}",
    )
    print(summary(calibration, report))
    print(f"\nwrote {args.model / 'calibration.json'}, {out / RAW_PLOT}, {out / CALIBRATED_PLOT}")
    return 0


def summary(calibration: Calibration, report: CalibrationReport) -> str:
    """The chosen map, each candidate's held-out ECE, the bins and the metrics before/after."""
    candidates = ", ".join(f"{m} {e:.4f}" for m, e in calibration.cross_validated_ece.items())
    raw, after = report.raw, report.calibrated
    lines = [
        f"calibration: {calibration.method}, fitted on {calibration.n_words} words of "
        f"{calibration.n_utterances} utterances ({calibration.n_correct} right)",
        f"{calibration.n_folds}-fold cross-validated dev ECE: {candidates}",
        "",
        "raw confidence",
        bins_table(raw.bins),
        "",
        f"calibrated ({calibration.method}; each word's map fitted without its fold)",
        bins_table(after.bins),
        "",
        f"{'':<6}{'raw':>10}{'calibrated':>12}",
    ]
    for name in ("ece", "brier", "auroc"):
        lines.append(
            f"{name.upper():<6}{_num(getattr(raw, name)):>10}{_num(getattr(after, name)):>12}"
        )
    return "\n".join(lines)


def bins_table(bins: Sequence[ReliabilityBin]) -> str:
    rows = [f"{'bin':>4} {'confidence range':>17} {'words':>6} {'mean conf':>10} {'accuracy':>9}"]
    for i, b in enumerate(bins, 1):
        rows.append(
            f"{i:>4} {b.lower:>8.3f}-{b.upper:<8.3f} {b.count:>6} "
            f"{b.mean_confidence:>10.3f} {b.accuracy:>9.3f}"
        )
    return "\n".join(rows)


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
