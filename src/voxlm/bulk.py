"""Transcribing many files: folders and manifests listed, shared out among the processes of
``accelerate launch``, decoded ahead of the model, and written so that a run can be resumed.

A bulk job is hours of audio, so three things matter beyond transcribing one file: the model
should not wait for a decoder (a background thread reads and resamples the next files while a
batch runs), a stopped run should pick up where it left off (an output is written whole, under
a temporary name then renamed, so an output that exists is complete and is skipped), and one
bad file should cost only itself (it is listed at the end with its error).
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import numpy as np
import torch
from tqdm.auto import tqdm

from voxlm.audio import SAMPLE_RATE, load_audio
from voxlm.decoding import DecodingOptions
from voxlm.formats import FORMATS, write_result
from voxlm.results import Transcript

if TYPE_CHECKING:
    from accelerate import PartialState

    from voxlm.model import VoxLM

# What voxlm.audio decodes (libsndfile, then PyAV); other files in a folder are not audio.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".mp4", ".webm")


@dataclass(frozen=True)
class BulkInput:
    """One audio file and the name its output takes under the output folder: its path below
    the folder or manifest that listed it, without the extension (a file given by itself: its
    stem), so that same-named files in different subfolders keep apart."""

    path: Path
    name: str


@dataclass(frozen=True)
class BulkOptions:
    """Where and how a bulk job writes. ``output_dir`` None prints each result instead (and
    nothing can be skipped); ``prefetch_batches`` is how many batches of files are decoded
    ahead of the one the model is on."""

    output_dir: Path | None = None
    format: str = "json"
    instruction: str | None = None
    overwrite: bool = False
    progress: bool = True
    prefetch_batches: int = 2

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format {self.format!r}: expected one of {', '.join(FORMATS)}")
        if self.prefetch_batches < 1:
            raise ValueError(f"prefetch_batches should be >= 1, got {self.prefetch_batches}")


@dataclass(frozen=True)
class Failure:
    """A file that could not be transcribed, and why."""

    path: Path
    error: str


@dataclass(frozen=True)
class BulkReport:
    """What a job (or one process's share of it) did; ``seconds`` is its wall time."""

    done: int
    skipped: int
    failures: tuple[Failure, ...]
    audio_seconds: float
    seconds: float

    @classmethod
    def combine(cls, reports: Sequence[BulkReport]) -> BulkReport:
        """The processes' reports as one job's: they ran side by side, so the wall time is the
        longest of theirs."""
        return cls(
            sum(r.done for r in reports),
            sum(r.skipped for r in reports),
            tuple(f for r in reports for f in r.failures),
            sum(r.audio_seconds for r in reports),
            max((r.seconds for r in reports), default=0.0),
        )

    @property
    def total(self) -> int:
        return self.done + self.skipped + len(self.failures)

    def describe(self) -> str:
        """The failed files with their errors, then one summary line."""
        lines = []
        if self.failures:
            lines.append(f"{len(self.failures)} of {self.total} files failed:")
            lines += [f"  {f.error}" for f in self.failures]
        minutes = self.seconds / 60
        rate = self.done / minutes if minutes > 0 else 0.0
        lines.append(
            f"{self.total} files: {self.done} transcribed, {self.skipped} skipped (output "
            f"exists), {len(self.failures)} failed; {self.audio_seconds / 60:.2f} min of audio "
            f"in {minutes:.2f} min ({rate:.1f} files/min)"
        )
        return "\n".join(lines)


# ---- listing ------------------------------------------------------------------------------------
def list_inputs(paths: Iterable[str | Path], unique_names: bool = True) -> list[BulkInput]:
    """Every audio file that ``paths`` name, once each, in the order given: a folder's audio
    files (``AUDIO_EXTENSIONS``, searched recursively, sorted), a ``.jsonl`` manifest's
    ``audio_filepath``s (``voxlm.data.manifest``'s format) and any other path as a file.

    ``unique_names``: raise ValueError where two files would write the same output (``a.wav``
    and ``a.mp3`` side by side), before any work is done rather than one overwriting the other.
    """
    found: dict[str, BulkInput] = {}
    for path in map(Path, paths):
        if path.is_dir():
            items = _folder_inputs(path)
        elif path.suffix == ".jsonl" and path.is_file():
            items = _manifest_inputs(path)
        else:
            items = [BulkInput(path, path.stem)]
        for item in items:
            found.setdefault(os.path.abspath(item.path), item)
    inputs = list(found.values())
    if unique_names:
        _check_unique_names(inputs)
    return inputs


def _folder_inputs(folder: Path) -> list[BulkInput]:
    files = sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
    )
    if not files:
        raise ValueError(f"{folder}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in it or below")
    return [BulkInput(p, _name_below(p, folder)) for p in files]


def _manifest_inputs(manifest: Path) -> list[BulkInput]:
    """A manifest's audio files; a relative ``audio_filepath`` is below the manifest's folder.
    Only the path is read: a manifest of files still to transcribe has no text yet."""
    items = []
    with manifest.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{manifest}:{number}: not valid JSON ({error.msg})") from None
            audio = record.get("audio_filepath") if isinstance(record, dict) else None
            if not isinstance(audio, str):
                raise ValueError(
                    f"{manifest}:{number}: expected an object with an 'audio_filepath' string, "
                    f"got {line.strip()[:80]}"
                )
            path = manifest.parent / audio  # an absolute audio_filepath stays as it is
            items.append(BulkInput(path, _name_below(path, manifest.parent)))
    return items


def _name_below(path: Path, base: Path) -> str:
    """``path`` below ``base`` without its extension; a path outside ``base`` keeps all of its
    parts (less the root), so no two files share a name."""
    absolute = Path(os.path.abspath(path))
    try:
        relative = absolute.relative_to(os.path.abspath(base))
    except ValueError:
        relative = absolute.relative_to(absolute.anchor)
    return relative.with_suffix("").as_posix()


def _check_unique_names(inputs: Sequence[BulkInput]) -> None:
    owners: dict[str, BulkInput] = {}
    for item in inputs:
        other = owners.setdefault(item.name, item)
        if other is not item:
            raise ValueError(
                f"{other.path} and {item.path} would both be written as {item.name}.<format>; "
                "rename one, or transcribe them in separate runs"
            )


def shard(inputs: Sequence[BulkInput], index: int, count: int) -> list[BulkInput]:
    """Process ``index`` of ``count``'s share: the files at positions i % count == index of the
    list sorted by path. Every process lists the same inputs, so they agree on who takes which
    file without talking; each keeps the given order for its own."""
    if not 0 <= index < count:
        raise ValueError(f"process index {index} is not in 0..{count - 1}")
    order = sorted(range(len(inputs)), key=lambda i: os.fspath(inputs[i].path))
    mine = {i for rank, i in enumerate(order) if rank % count == index}
    return [item for i, item in enumerate(inputs) if i in mine]


# ---- processes ----------------------------------------------------------------------------------
def launch_state(device: str) -> tuple[PartialState, str]:
    """This process's place among those ``accelerate launch`` started (alone without it) and
    the device its model goes on: a bare ``cuda`` means its own GPU, ``cuda:<local rank>``.

    On CPUs accelerate pairs the processes (gloo) only when asked to, so a ``cpu`` device asks.
    """
    from accelerate import PartialState

    requested = torch.device(device)
    state = PartialState(cpu=requested.type == "cpu")
    if requested.type != "cpu" and requested.index is None and state.device.type == requested.type:
        return state, str(state.device)
    return state, device


def transcribe_sharded(
    model: VoxLM,
    inputs: Sequence[BulkInput],
    options: DecodingOptions,
    bulk: BulkOptions,
    state: PartialState,
    stdout: TextIO,
) -> BulkReport:
    """This process's share of ``inputs`` transcribed; returns the whole job's report, on every
    process, so that all of them exit alike. Only the main process shows progress."""
    from accelerate.utils import gather_object

    mine = shard(inputs, state.process_index, state.num_processes)
    bulk = replace(bulk, progress=bulk.progress and state.is_main_process)
    report = transcribe_files(model, mine, options, bulk, stdout)
    return BulkReport.combine(gather_object([report]))


# ---- one process --------------------------------------------------------------------------------
Loaded = tuple[BulkInput, "np.ndarray | Exception"]


def transcribe_files(
    model: VoxLM,
    inputs: Sequence[BulkInput],
    options: DecodingOptions,
    bulk: BulkOptions,
    stdout: TextIO,
) -> BulkReport:
    """Transcribe ``inputs`` in batches of ``options.batch_size`` files, skipping those whose
    output exists (unless ``bulk.overwrite``); each result is written as soon as its batch is
    done, so an interrupted run loses at most the batch it was on."""
    start = time.perf_counter()
    todo = [x for x in inputs if bulk.overwrite or not _written(x, bulk)]
    done, audio_seconds, failures = 0, 0.0, []
    depth = bulk.prefetch_batches * options.batch_size
    bar = tqdm(
        total=len(todo), unit="file", desc="transcribe", disable=None if bulk.progress else True
    )
    with bar, closing(prefetch(todo, depth)) as stream:
        while batch := list(islice(stream, options.batch_size)):
            for item, result in _transcribe_batch(model, batch, options, bulk.instruction):
                if isinstance(result, Exception):
                    failures.append(_failure(item, result))
                    continue
                _write(item, result, bulk, stdout)
                done += 1
                audio_seconds += result.audio_duration
            bar.update(len(batch))
    elapsed = time.perf_counter() - start
    return BulkReport(done, len(inputs) - len(todo), tuple(failures), audio_seconds, elapsed)


def prefetch(inputs: Sequence[BulkInput], depth: int) -> Iterator[Loaded]:
    """Each input with its samples (float32 mono 16 kHz), or the error that reading it raised.

    A background thread decodes and resamples up to ``depth`` files ahead of the one handed
    out, so the next batch is ready when the model finishes one (libsndfile, FFmpeg and libsoxr
    do their work in C, beside the model). Close the iterator to stop the thread.
    """
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voxlm-decode")
    pending: deque[tuple[BulkInput, Future]] = deque()
    try:
        for item in inputs:
            pending.append((item, pool.submit(load_audio, item.path)))
            if len(pending) > depth:
                yield _loaded(*pending.popleft())
        while pending:
            yield _loaded(*pending.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _loaded(item: BulkInput, future: Future) -> Loaded:
    try:
        return item, future.result()
    except (ValueError, OSError) as error:  # this file's problem; a bug keeps its traceback
        return item, error


def _transcribe_batch(
    model: VoxLM, batch: list[Loaded], options: DecodingOptions, instruction: str | None
) -> list[tuple[BulkInput, Transcript | Exception]]:
    """Each file's transcript or error. Files decoded are transcribed together; where that
    fails on a file's audio, each alone, so one bad file does not take its batch with it."""
    failed = [(item, wave) for item, wave in batch if isinstance(wave, Exception)]
    loaded = [(item, wave) for item, wave in batch if not isinstance(wave, Exception)]
    if not loaded:
        return failed
    waves = [wave for _, wave in loaded]
    try:
        results = model.transcribe(
            waves, instruction=instruction, options=options, sample_rate=SAMPLE_RATE
        )
    except (ValueError, OSError) as error:
        if len(loaded) == 1:
            return [*failed, (loaded[0][0], error)]
        alone = [_transcribe_batch(model, [one], options, instruction) for one in loaded]
        return failed + [pair for pairs in alone for pair in pairs]
    return failed + list(zip([item for item, _ in loaded], results, strict=True))


def _failure(item: BulkInput, error: Exception) -> Failure:
    """The error as it reads on its own: prefixed with the file unless it names it already."""
    message = str(error)
    return Failure(
        item.path, message if os.fspath(item.path) in message else f"{item.path}: {message}"
    )


# ---- writing ------------------------------------------------------------------------------------
def output_path(output_dir: Path, item: BulkInput, fmt: str) -> Path:
    """Where ``item``'s result goes: its name below ``output_dir``, the format as extension."""
    return output_dir / f"{item.name}.{'json' if fmt == 'verbose_json' else fmt}"


def _written(item: BulkInput, bulk: BulkOptions) -> bool:
    return bulk.output_dir is not None and output_path(bulk.output_dir, item, bulk.format).exists()


def _write(item: BulkInput, transcript: Transcript, bulk: BulkOptions, stdout: TextIO) -> None:
    text = write_result(transcript, bulk.format)
    if bulk.output_dir is None:
        stdout.write(text)
    else:
        write_text_atomic(output_path(bulk.output_dir, item, bulk.format), text)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all: a temporary file beside it (this
    process's own, named after its id), then a rename, which is atomic on one file system."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
