"""Bulk transcription throughput: files per minute of `voxlm transcribe FOLDER` with one process
and with several under `accelerate launch`, each a fresh run over the same folder.

    python benchmarks/bulk.py --model DIR --data FOLDER [--processes 1 2] [--device cuda]
    python benchmarks/bulk.py --quick            # voxlm-tiny (random) on a few generated clips

Arguments it does not know go to `voxlm transcribe` (e.g. `--batch-size 16 --vad energy`).
Two rates per run: over the whole command (Python start-up and model loads included) and over
the transcription alone (the summary line of the main process).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

# The last line `voxlm transcribe` prints (voxlm.bulk.BulkReport.describe).
SUMMARY = re.compile(r"(\d+) files: (\d+) transcribed, .*\(([\d.]+) files/min\)")


def toy_folder(folder: Path, clips: int) -> Path:
    """Harmonic "speech-like" clips of 1-3 s in two subfolders (the energy detector hears
    speech in them); with a trained model use real speech instead."""
    rng = np.random.default_rng(0)
    for i in range(clips):
        t = np.arange(int(rng.uniform(1.0, 3.0) * 16000)) / 16000
        audio = 0.1 * np.sin(2 * np.pi * 150 * t) * (1 + np.sin(2 * np.pi * 3 * t))
        path = folder / f"part{i % 2}" / f"clip{i:03d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, audio.astype(np.float32), 16000)
    return folder


def command(processes: int, device: str) -> tuple[list[str], dict[str, str]]:
    """How to start `voxlm` in ``processes`` processes; on CPUs accelerate pairs processes only
    with ACCELERATE_USE_CPU=1 and --multi_gpu (its --cpu alone starts one process)."""
    env = dict(os.environ)
    if processes == 1:
        return [sys.executable, "-m", "voxlm"], env
    if device == "cpu":
        env["ACCELERATE_USE_CPU"] = "1"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
    launch += ["--num_processes", str(processes), "--num_machines", "1"]
    launch += ["--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"]
    return [*launch, "-m", "voxlm"], env


def run(processes: int, args: argparse.Namespace, extra: list[str]) -> dict:
    """One fresh run over the folder; its wall time and the main process's summary."""
    voxlm, env = command(processes, args.device)
    with tempfile.TemporaryDirectory() as out:
        argv = [*voxlm, "transcribe", str(args.data), "--model", args.model]
        argv += ["--device", args.device, "--output-dir", out, "--format", "txt", *extra]
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        wall = time.perf_counter() - start
    summary = SUMMARY.search(done.stderr)
    if done.returncode != 0 or summary is None:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    files, transcribed, rate = int(summary[1]), int(summary[2]), float(summary[3])
    return {
        "processes": processes,
        "files": files,
        "transcribed": transcribed,
        "wall_s": wall,
        "files_per_min_wall": 60 * transcribed / wall,
        "files_per_min": rate,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="voxlm-tiny", help="a model directory or variant")
    parser.add_argument("--data", type=Path, default=None, help="a folder of audio files")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (one GPU per process)")
    parser.add_argument(
        "--quick", action="store_true", help="voxlm-tiny on 6 generated clips (a smoke run)"
    )
    args, extra = parser.parse_known_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.quick:
            args.model, args.data = "voxlm-tiny", toy_folder(Path(tmp), clips=6)
            extra += ["--vad", "energy"]
        elif args.data is None:
            parser.error("--data FOLDER is required without --quick")
        rows = [run(n, args, extra) for n in args.processes]
    print(f"{args.model} on {args.data} ({args.device})")
    print("processes | files | wall s | files/min (wall) | files/min (transcription)")
    for r in rows:
        print(
            f"{r['processes']:9d} | {r['files']:5d} | {r['wall_s']:6.1f} | "
            f"{r['files_per_min_wall']:16.1f} | {r['files_per_min']:25.1f}"
        )
    return rows


if __name__ == "__main__":
    main()
