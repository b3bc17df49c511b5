"""JSONL manifests: one utterance per line, and a Dataset that loads their audio.

Line format (shared with `voxlm synth` and every reader):
    {"audio_filepath": "train/3/1/3-1-0007.flac", "duration": 2.41, "text": "the cat sat",
     "words": [{"word": "the", "start": 0.05, "end": 0.21}, ...], "speaker": "3", "id": "3-1-0007"}
`audio_filepath` is relative to the manifest's directory unless absolute; `words` may be null.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.utils.data

from voxlm.audio import load_audio
from voxlm.results import WordTiming

__all__ = [
    "Utterance",
    "UtteranceDataset",
    "WordTiming",
    "read_manifest",
    "write_manifest",
]

logger = logging.getLogger("voxlm")


@dataclass(frozen=True)
class Utterance:
    """One audio file and its transcript; `audio_path` is absolute once read from a manifest."""

    id: str
    audio_path: str
    text: str
    duration: float
    words: tuple[WordTiming, ...] | None = None
    speaker: str = ""

    def to_dict(self, relative_to: str | Path | None = None) -> dict[str, Any]:
        """The manifest line; the path is made relative to `relative_to` when it lies below it."""
        path = self.audio_path
        if relative_to is not None:
            base = Path(relative_to).resolve()
            resolved = Path(path).resolve()
            if resolved.is_relative_to(base):
                path = resolved.relative_to(base).as_posix()
        words = None
        if self.words is not None:
            words = [{"word": w, "start": s, "end": e} for w, s, e in self.words]
        return {
            "audio_filepath": path,
            "duration": self.duration,
            "text": self.text,
            "words": words,
            "speaker": self.speaker,
            "id": self.id,
        }


def _field(record: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if name not in record:
        raise ValueError(f"{where}: missing field {name!r}")
    value = record[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{where}: field {name!r} should be {kind}, got {value!r}")
    return value


def _parse_words(value: Any, where: str) -> tuple[WordTiming, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError(f"{where}: field 'words' should be a list or null, got {value!r}")
    words = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise ValueError(f"{where}: field 'words[{i}]' should be an object, got {item!r}")
        word = _field(item, "word", str, f"{where} words[{i}]")
        start = float(_field(item, "start", (int, float), f"{where} words[{i}]"))
        end = float(_field(item, "end", (int, float), f"{where} words[{i}]"))
        if not 0 <= start <= end:
            raise ValueError(f"{where}: field 'words[{i}]' needs 0 <= start <= end, got {item!r}")
        words.append(WordTiming(word, start, end))
    return tuple(words)


def _parse_line(line: str, base: Path, where: str) -> Utterance:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: not valid JSON ({error.msg})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
    audio = Path(_field(record, "audio_filepath", str, where))
    duration = float(_field(record, "duration", (int, float), where))
    if duration < 0:
        raise ValueError(f"{where}: field 'duration' should be >= 0, got {duration}")
    return Utterance(
        id=str(record.get("id") or audio.stem),
        audio_path=str(audio if audio.is_absolute() else base / audio),
        text=_field(record, "text", str, where),
        duration=duration,
        words=_parse_words(record.get("words"), where),
        speaker=str(record.get("speaker") or ""),
    )


def read_manifest(path: str | Path) -> list[Utterance]:
    """Parse a JSONL manifest; a bad line raises ValueError naming `file:line` and the field."""
    path = Path(path)
    base = path.resolve().parent
    utterances = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                utterances.append(_parse_line(line, base, f"{path}:{number}"))
    return utterances


def write_manifest(path: str | Path, utterances: Iterable[Utterance]) -> None:
    """Write a JSONL manifest atomically (temp file + os.replace), paths relative to its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for utterance in utterances:
                record = utterance.to_dict(relative_to=path.parent)
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class UtteranceDataset(torch.utils.data.Dataset):
    """Loads each utterance's audio (float32 mono 16 kHz) on access.

    A corrupt or unreadable file yields None instead of raising, so one bad file among
    thousands does not end a training run; it is logged, and `collate` drops it.
    """

    def __init__(self, utterances: Sequence[Utterance]) -> None:
        self.utterances = list(utterances)

    @classmethod
    def from_manifest(cls, path: str | Path) -> UtteranceDataset:
        return cls(read_manifest(path))

    def __len__(self) -> int:
        return len(self.utterances)

    def durations(self) -> list[float]:
        """Durations in seconds, for `LengthBucketSampler`."""
        return [u.duration for u in self.utterances]

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        utterance = self.utterances[index]
        try:
            audio = load_audio(utterance.audio_path)
        except (ValueError, OSError) as error:
            logger.warning("skipping %s (%s): %s", utterance.id, utterance.audio_path, error)
            return None
        words = None
        if utterance.words is not None:
            words = [WordTiming(*w) for w in utterance.words]
        return {"id": utterance.id, "audio": audio, "text": utterance.text, "words": words}
