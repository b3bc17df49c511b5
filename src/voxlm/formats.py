"""Writing a transcript as json, txt, srt, vtt or OpenAI-style verbose_json."""

from __future__ import annotations

import json
from dataclasses import dataclass

from voxlm.results import Transcript, Word

FORMATS = ("json", "txt", "srt", "vtt", "verbose_json")

# Common subtitle guidance (e.g. Netflix, BBC): about 42 characters a line, at most ~7 s on screen.
MAX_CUE_CHARS = 42
MAX_CUE_SECONDS = 7.0
SENTENCE_END = (".", "!", "?", "。", "！", "？", "…")


@dataclass(frozen=True)
class Cue:
    """One subtitle: text shown from ``start`` to ``end`` seconds."""

    start: float
    end: float
    text: str


def format_timestamp(seconds: float, decimal: str = ",") -> str:
    """``HH:MM:SS,mmm`` (srt) or, with ``decimal="."``, ``HH:MM:SS.mmm`` (vtt)."""
    if seconds < 0:
        raise ValueError(f"timestamp must be non-negative, got {seconds}")
    ms = round(seconds * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{ms:03d}"


def subtitle_cues(
    words: tuple[Word, ...] | list[Word],
    max_chars: int = MAX_CUE_CHARS,
    max_seconds: float = MAX_CUE_SECONDS,
) -> list[Cue]:
    """Group consecutive words into cues.

    A cue ends after a word ending a sentence, or before a word that would make it longer than
    ``max_chars`` characters or ``max_seconds`` seconds. A single word longer than either
    limit still gets its own cue.
    """
    cues: list[Cue] = []
    group: list[Word] = []
    for word in words:
        if group:
            text = " ".join(w.word for w in group) + " " + word.word
            if len(text) > max_chars or word.end - group[0].start > max_seconds:
                cues.append(_cue(group))
                group = []
        group.append(word)
        if word.word.endswith(SENTENCE_END):
            cues.append(_cue(group))
            group = []
    if group:
        cues.append(_cue(group))
    return cues


def _cue(words: list[Word]) -> Cue:
    return Cue(words[0].start, words[-1].end, " ".join(w.word for w in words))


def _transcript_cues(transcript: Transcript, max_chars: int, max_seconds: float) -> list[Cue]:
    """Cues from the words; text without word times becomes one cue over the whole audio."""
    if transcript.words:
        return subtitle_cues(transcript.words, max_chars, max_seconds)
    if transcript.text.strip():
        return [Cue(0.0, transcript.audio_duration, transcript.text.strip())]
    return []


def _srt(cues: list[Cue]) -> str:
    return "\n".join(
        f"{i}\n{format_timestamp(c.start)} --> {format_timestamp(c.end)}\n{c.text}\n"
        for i, c in enumerate(cues, start=1)
    )


def _vtt(cues: list[Cue]) -> str:
    body = "\n".join(
        f"{format_timestamp(c.start, '.')} --> {format_timestamp(c.end, '.')}\n{c.text}\n"
        for c in cues
    )
    return "WEBVTT\n\n" + body if cues else "WEBVTT\n"


def _verbose_json(transcript: Transcript, cues: list[Cue]) -> dict:
    """OpenAI's verbose_json layout, with each word's confidence added.

    VoxLM does not detect the language, so ``language`` is null unless the caller (the HTTP
    server, from its request) fills it in.
    """
    return {
        "task": "transcribe",
        "language": None,
        "duration": transcript.audio_duration,
        "text": transcript.text,
        "segments": [
            {"id": i, "start": c.start, "end": c.end, "text": c.text} for i, c in enumerate(cues)
        ],
        "words": [w.to_dict() for w in transcript.words],
        "stop_reason": transcript.stop_reason,
    }


def write_result(
    transcript: Transcript,
    fmt: str,
    max_chars: int = MAX_CUE_CHARS,
    max_seconds: float = MAX_CUE_SECONDS,
) -> str:
    """The transcript as text in format ``fmt`` (one of ``FORMATS``).

    Every non-empty result ends with a newline. Subtitle cues (srt, vtt, verbose_json segments)
    are built by ``subtitle_cues``; with no words and no text srt is an empty file and vtt only
    its header, both valid.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps(transcript.to_dict(), indent=2, ensure_ascii=False) + "\n"
    if fmt == "txt":
        return transcript.text + "\n"
    cues = _transcript_cues(transcript, max_chars, max_seconds)
    if fmt == "srt":
        return _srt(cues)
    if fmt == "vtt":
        return _vtt(cues)
    return json.dumps(_verbose_json(transcript, cues), indent=2, ensure_ascii=False) + "\n"
