"""How VoxLM is timed against a peer and how the comparison is reported: one ``PeerRow`` each.

Both sides run in the same process, taking turns, each after one warm-up run (compilation,
caches, the allocator), and each keeps its best time. Taking turns puts a burst of load from
elsewhere on a shared machine on both sides rather than one; the best of N is the run that
load disturbed least, so the ratio of two bests is the steadiest number a busy machine gives.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from voxlm.audio import SAMPLE_RATE


@dataclass(frozen=True)
class PeerRow:
    """VoxLM against the tool users would pick instead, on the same work.

    ``ratio`` reads the way ``target`` does: a speed-up (baseline seconds / VoxLM seconds)
    where the target says "faster", a share of the time (VoxLM seconds / baseline seconds)
    where it says "the time". ``met`` is None where nothing was measured; ``note`` says why,
    or what was checked besides the time (equal outputs, token counts).
    """

    what: str
    baseline: str
    voxlm_seconds: float
    baseline_seconds: float
    ratio: float
    target: str
    met: bool | None
    note: str

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Target:
    """What a row must reach: a speed-up of at least ``value`` (``faster``), else at most
    ``value`` times the baseline's time."""

    value: float
    faster: bool

    @classmethod
    def speed_up(cls, at_least: float) -> Target:
        return cls(at_least, faster=True)

    @classmethod
    def time_share(cls, at_most: float) -> Target:
        return cls(at_most, faster=False)

    def __str__(self) -> str:
        return f">= {self.value:g}x faster" if self.faster else f"<= {self.value:g}x the time"

    def row(
        self, what: str, baseline: str, voxlm_seconds: float, baseline_seconds: float, note: str
    ) -> PeerRow:
        """The row for two measured times."""
        if self.faster:
            ratio = baseline_seconds / voxlm_seconds
            met = ratio >= self.value
        else:
            ratio = voxlm_seconds / baseline_seconds
            met = ratio <= self.value
        return PeerRow(what, baseline, voxlm_seconds, baseline_seconds, ratio, str(self), met, note)

    def skipped(self, what: str, baseline: str, reason: str) -> PeerRow:
        """The row of a comparison that could not run (NaN times, so it still formats)."""
        return PeerRow(what, baseline, math.nan, math.nan, math.nan, str(self), None, reason)


def race(
    voxlm: Callable[[], object],
    baseline: Callable[[], object],
    repeats: int,
    device: str = "cpu",
) -> tuple[float, float]:
    """Best wall seconds of (``voxlm``, ``baseline``) over ``repeats`` turns each, after one
    warm-up call each, without autograd. On a GPU each call is timed to its last kernel."""
    wait = torch.cuda.synchronize if torch.device(device).type == "cuda" else _no_wait

    def seconds(fn: Callable[[], object]) -> float:
        wait()
        start = time.perf_counter()
        fn()
        wait()
        return time.perf_counter() - start

    with torch.no_grad():
        seconds(voxlm), seconds(baseline)
        turns = [(seconds(voxlm), seconds(baseline)) for _ in range(repeats)]
    return min(t[0] for t in turns), min(t[1] for t in turns)


def _no_wait() -> None:
    """The CPU runs each call to its end before returning: nothing to wait for."""


def noise(clips: int, seconds: float, seed: int = 0) -> np.ndarray:
    """Seeded white noise, float32 [clips, samples] at 16 kHz, 0.1 RMS: what the audio holds
    changes none of the work measured here (random weights, a fixed token count)."""
    samples = round(seconds * SAMPLE_RATE)
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((clips, samples))).astype(np.float32)
