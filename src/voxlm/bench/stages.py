"""Where the time of a transcription goes, stage by stage (``voxlm bench``).

The clips are written as FLAC files and handed to the real ``transcribe`` with a
``voxlm.timer.StageTimer`` listening, so each stage's time is that of the code users run:
audio decode, speech detection, features, encoder, projector, prefill, decoding, the aligner
pass, DTW, words and confidence, and "other" for what lies between (batching, padding, copies).
Untimed warm-up runs come first: numba compiles DTW, the allocator grows, and Silero VAD
(TorchScript) re-optimises itself over its first three calls, each far slower than the next
(about 2.7, 1.5 and 1.0 s on a 2 s clip, then 0.05 s, on 2 CPU cores). The first run's time is
reported apart ("cold"): it is what a one-off ``voxlm transcribe`` pays.

Random weights would stop at a random point, so every window decodes a fixed number of tokens:
``tokens_per_second`` of its audio plus ``transcribe.MIN_NEW_TOKENS``, with EOS and the stop
rules off (``DecodingOptions.ignore_eos``); a random and a trained model of one shape do the
same work. Every window is decoded whatever the speech detector thinks of synthetic audio; the
detector still runs and is timed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from voxlm.audio import SAMPLE_RATE
from voxlm.decoding import DecodingOptions
from voxlm.llm import torch_dtype
from voxlm.model import VoxLM
from voxlm.quantize import QUANTIZATIONS, quantize
from voxlm.timer import StageTimer
from voxlm.transcribe import MIN_NEW_TOKENS

# In pipeline order; "other" is the wall time no stage claims.
STAGES = (
    "audio decode",
    "speech detection",
    "features",
    "encoder",
    "projector",
    "prefill",
    "decode",
    "aligner pass",
    "DTW",
    "words + confidence",
)
OTHER = "other"
DTYPES = ("float32", "bfloat16", "float16")
DEFAULT_MODEL = "voxlm-tiny"
# --quick: toy sizes, so that every benchmark runs in CI in well under a minute.
QUICK_SIZES = {"seconds": 2.0, "clips": 2, "runs": 1}


@dataclass(frozen=True)
class BenchOptions:
    """What ``voxlm bench`` times. Without ``model`` or ``variant``: voxlm-tiny (random)."""

    model: str | None = None  # a saved model directory or .pt checkpoint
    variant: str | None = None  # a variant name: pretrained backbones, or random_weights
    random_weights: bool = False  # the variant at its real shape, random (no download)
    device: str = "cpu"
    dtype: str = "float32"
    quantize: str | None = None  # int8: dynamic int8 linear layers (CPU, float32)
    seconds: float = 10.0  # of each clip
    clips: int = 8  # per run; decoded in batches of the decoding options' batch_size
    runs: int = 3  # timed runs over all the clips
    warmup: int = 2  # untimed runs before them
    tokens_per_second: float = 4.0  # tokens decoded per second of audio (plus MIN_NEW_TOKENS)
    json: Path | None = None  # also write the result here
    peers: bool = False  # also time VoxLM against its peers (voxlm.bench.peers)
    quick: bool = False  # toy sizes (QUICK_SIZES) and the peers: a CI run under a minute

    def __post_init__(self) -> None:
        if self.model is not None and self.variant is not None:
            raise ValueError("give --model DIR or --variant NAME, not both")
        if self.random_weights and self.model is not None:
            raise ValueError("--random-weights builds a --variant; a --model loads its weights")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.quantize is not None and self.quantize not in QUANTIZATIONS:
            raise ValueError(f"quantize must be one of {QUANTIZATIONS}, got {self.quantize!r}")
        for name in ("seconds", "clips", "runs", "warmup", "tokens_per_second"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    @property
    def sized(self) -> BenchOptions:
        """These options at ``QUICK_SIZES`` where ``quick`` asks for them."""
        return dataclasses.replace(self, **QUICK_SIZES) if self.quick else self


@dataclass(frozen=True)
class StageRow:
    name: str
    seconds_per_clip: float
    share: float  # of the total wall time


@dataclass(frozen=True)
class BenchResult:
    """One benchmark: the setting, each stage's time per clip, and the totals."""

    model: str
    device: str
    dtype: str
    quantize: str | None
    threads: int
    clips: int
    seconds: float  # of each clip
    runs: int
    warmup: int
    batch_size: int
    beam_size: int
    tokens_per_second: float  # the fixed decoding rule: this many per second, plus min_tokens
    min_tokens: int
    stages: tuple[StageRow, ...]
    cold_seconds_per_clip: float  # the first warm-up run's wall time
    tokens_per_clip: float  # decoded, on average
    rtfx: float  # audio seconds transcribed per wall second
    tokens_per_wall_second: float  # decoded tokens per second of the decode stage
    ms_per_token: float  # the decode stage's time per decoded token
    peak_rss_mib: float  # the process's peak resident memory, model loading included
    gpu_peak_mib: float | None  # torch.cuda.max_memory_allocated over the timed runs

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def run_stages(
    options: BenchOptions, decoding: DecodingOptions | None = None, progress: bool = True
) -> BenchResult:
    """Time ``transcribe`` on ``options.clips`` FLAC files: ``warmup`` untimed runs, then
    ``runs`` timed ones with the stage timer listening."""
    options = options.sized
    decoding = fixed_work(decoding or DecodingOptions(), options.tokens_per_second)
    model = load_model(options)
    sync = torch.cuda.synchronize if model.device.type == "cuda" else None
    timer = StageTimer(sync)
    total = options.warmup + options.runs
    with (
        tempfile.TemporaryDirectory(prefix="voxlm-bench-") as folder,
        tqdm(total=total, desc="bench", unit="run", disable=not progress) as bar,
    ):
        paths = write_clips(Path(folder), options.clips, options.seconds)
        cold = _timed(model, paths, decoding, sync)
        bar.update()
        for _ in range(options.warmup - 1):
            _timed(model, paths, decoding, sync)
            bar.update()
        if sync is not None:
            torch.cuda.reset_peak_memory_stats()
        wall = 0.0
        with timer.listening(), feature_stage(model, timer):
            for _ in range(options.runs):
                wall += _timed(model, paths, decoding, sync)
                bar.update()
    return _result(options, decoding, model, timer, wall, cold)


def _timed(
    model: VoxLM, paths: list[Path], decoding: DecodingOptions, sync: Callable[[], None] | None
) -> float:
    """Wall seconds of one ``transcribe`` of all the clips (on a GPU, to its last kernel)."""
    start = time.perf_counter()
    model.transcribe(paths, options=decoding)
    if sync is not None:
        sync()
    return time.perf_counter() - start


def fixed_work(options: DecodingOptions, tokens_per_second: float) -> DecodingOptions:
    """Decoding that always does the same work: every window decodes its whole token budget
    (EOS and the stop rules off), and every window is decoded (no no-speech skip)."""
    return dataclasses.replace(
        options,
        max_tokens_per_second=tokens_per_second,
        ignore_eos=True,
        min_confidence=0.0,
        max_repeats=0,
        no_speech_check=False,
    )


def load_model(options: BenchOptions) -> VoxLM:
    """The model to time, on its device, in its dtype, quantised where asked."""
    if options.random_weights:
        model = VoxLM.from_config(options.variant or DEFAULT_MODEL, random_weights=True)
    else:
        model = VoxLM.from_pretrained(options.model or options.variant or DEFAULT_MODEL)
    model = model.eval().to(device=options.device, dtype=torch_dtype(options.dtype))
    return quantize(model, options.quantize) if options.quantize else model


def write_clips(folder: Path, clips: int, seconds: float) -> list[Path]:
    """``clips`` FLAC files of speech-like sound: harmonics of a gliding pitch, at syllable
    rate, in a little noise. What the decoders cost does not depend on what was said."""
    paths = []
    for i in range(clips):
        rng = np.random.default_rng(i)
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        f0 = 110 + 50 * rng.random() + 30 * np.sin(2 * np.pi * (0.3 + 0.4 * rng.random()) * t)
        phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
        voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
        syllables = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2  # about 4 syllables per second
        x = 0.2 * voiced * syllables / np.abs(voiced).max() + 0.002 * rng.standard_normal(len(t))
        path = folder / f"clip{i}.flac"
        sf.write(path, x.astype(np.float32), SAMPLE_RATE)
        paths.append(path)
    return paths


@contextlib.contextmanager
def feature_stage(model: VoxLM, timer: StageTimer) -> Iterator[None]:
    """Time the encoder's input features as their own stage.

    They are computed inside the encoder's forward, before its first layer (the log-mel for
    Whisper, the waveform normalisation for wav2vec2): a hook where the forward starts opens
    the stage and one on the first layer closes it, so ``encoder.py`` needs no timer of its own
    and nothing is hooked outside a benchmark.
    """
    encoder = model.encoder
    first = encoder.backbone.conv1 if encoder.kind == "whisper" else encoder.backbone
    running: list[contextlib.AbstractContextManager[None]] = []

    def start(*_: object) -> None:
        running.append(timer.time("features"))
        running[-1].__enter__()

    def stop(*_: object) -> None:
        if running:
            running.pop().__exit__(None, None, None)

    hooks = [encoder.register_forward_pre_hook(start), first.register_forward_pre_hook(stop)]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


def _result(
    options: BenchOptions,
    decoding: DecodingOptions,
    model: VoxLM,
    timer: StageTimer,
    wall: float,
    cold: float,
) -> BenchResult:
    n = options.clips * options.runs
    seconds = {name: timer.seconds.get(name, 0.0) for name in STAGES}
    seconds[OTHER] = max(wall - sum(seconds.values()), 0.0)
    tokens = timer.counts["tokens"]
    gpu = torch.cuda.max_memory_allocated() / 2**20 if model.device.type == "cuda" else None
    return BenchResult(
        model=options.model or options.variant or DEFAULT_MODEL,
        device=str(model.device),
        dtype=options.dtype,
        quantize=options.quantize,
        threads=torch.get_num_threads(),
        clips=options.clips,
        seconds=options.seconds,
        runs=options.runs,
        warmup=options.warmup,
        batch_size=decoding.batch_size,
        beam_size=decoding.beam_size,
        tokens_per_second=options.tokens_per_second,
        min_tokens=MIN_NEW_TOKENS,
        stages=tuple(StageRow(k, v / n, v / wall) for k, v in seconds.items()),
        cold_seconds_per_clip=cold / options.clips,
        tokens_per_clip=tokens / n,
        rtfx=n * options.seconds / wall,
        tokens_per_wall_second=tokens / seconds["decode"] if seconds["decode"] else math.nan,
        ms_per_token=1000 * seconds["decode"] / tokens if tokens else math.nan,
        peak_rss_mib=peak_rss_mib(),
        gpu_peak_mib=gpu,
    )


def peak_rss_mib() -> float:
    """The process's peak resident memory (getrusage), or its current one (psutil) where the
    platform has no getrusage; NaN where neither is there."""
    try:
        import resource
    except ImportError:  # Windows
        try:
            import psutil
        except ImportError:
            return math.nan
        return psutil.Process(os.getpid()).memory_info().rss / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes / KiB


def format_table(result: BenchResult) -> str:
    """The printed report: the setting, one line per stage, the totals."""
    r = result
    quantized = f", {r.quantize} linear layers" if r.quantize else ""
    lines = [
        f"voxlm bench: {r.model} on {r.device} ({r.dtype}{quantized}, {r.threads} threads)",
        f"{r.clips} clips x {r.seconds:g} s (FLAC), batches of {r.batch_size}, beam {r.beam_size},"
        f" {r.runs} timed runs after {r.warmup} warm-up runs (the first, cold: "
        f"{1000 * r.cold_seconds_per_clip:.0f} ms / clip)",
        f"fixed work: {r.tokens_per_second:g} tokens per second of audio + {r.min_tokens} per "
        f"window, EOS and stop rules off, so random weights do a trained model's work "
        f"({r.tokens_per_clip:.1f} tokens per clip)",
        "",
        f"{'stage':<20} {'ms / clip':>10} {'share':>7}",
    ]
    for row in r.stages:
        note = f"  {r.ms_per_token:.2f} ms / token" if row.name == "decode" else ""
        lines.append(
            f"{row.name:<20} {1000 * row.seconds_per_clip:>10.2f} {100 * row.share:>6.1f}%{note}"
        )
    total = sum(row.seconds_per_clip for row in r.stages)
    lines += [
        f"{'total':<20} {1000 * total:>10.2f} {100.0:>6.1f}%",
        "",
        f"RTFx {r.rtfx:.1f} (audio seconds per wall second), "
        f"{r.tokens_per_wall_second:.1f} tokens/s while decoding, "
        f"peak RSS {r.peak_rss_mib:.0f} MiB"
        + (f", GPU peak {r.gpu_peak_mib:.0f} MiB" if r.gpu_peak_mib is not None else ""),
    ]
    return "\n".join(lines)
