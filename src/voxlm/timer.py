"""Where inference time goes: the pipeline names its stages, and a benchmark may time them.

The inference path marks each stage with ``with stage("encoder"):``. With no ``StageTimer``
listening that is one context-variable read and a shared do-nothing context, well under a
microsecond, so transcription is not slowed; ``voxlm bench`` (``voxlm.bench.stages``) starts a
timer around the real ``transcribe`` call, so the time it reports is the time users spend. A
context variable rather than an argument carried through every call: the stages sit five calls
deep (the decoding loop, the encoder), and a benchmark must not change the signatures it measures.

Stages may nest; a stage's time excludes the stages inside it (the encoder's excludes its
log-mel features), so the stages add up to the run without counting anything twice.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from contextvars import ContextVar

_LISTENING: ContextVar[StageTimer | None] = ContextVar("voxlm_stage_timer", default=None)
_OFF = contextlib.nullcontext()  # reusable: entering it does nothing


def stage(name: str) -> AbstractContextManager[object]:
    """Time the block as stage ``name`` where a ``StageTimer`` is listening; else nothing."""
    timer = _LISTENING.get()
    return _OFF if timer is None else timer.time(name)


def count(name: str, n: int) -> None:
    """Add ``n`` to the listening timer's counter ``name`` (e.g. tokens decoded)."""
    timer = _LISTENING.get()
    if timer is not None:
        timer.counts[name] += n


class StageTimer:
    """Wall seconds per stage, each stage's own (inner stages excluded), and named counts.

    ``synchronize`` runs at every stage boundary: on a GPU, work is queued and a stage's clock
    must wait for its kernels (``torch.cuda.synchronize``), else the time lands on whichever
    later stage first waits for a result.
    """

    def __init__(self, synchronize: Callable[[], None] | None = None) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self._synchronize = synchronize or (lambda: None)
        self._inner: list[float] = []  # per open stage: seconds spent in stages inside it

    @contextlib.contextmanager
    def time(self, name: str) -> Iterator[None]:
        self._synchronize()
        self._inner.append(0.0)
        start = time.perf_counter()
        try:
            yield
        finally:
            self._synchronize()
            elapsed = time.perf_counter() - start
            self.seconds[name] += elapsed - self._inner.pop()
            if self._inner:
                self._inner[-1] += elapsed

    @contextlib.contextmanager
    def listening(self) -> Iterator[StageTimer]:
        """Within the block, the stages the pipeline marks are timed by this timer."""
        token = _LISTENING.set(self)
        try:
            yield self
        finally:
            _LISTENING.reset(token)
