import json

import pytest

from voxlm.decoding import Transcript, Word
from voxlm.formats import FORMATS, format_timestamp, subtitle_cues, write_result

THREE_WORDS = Transcript(
    text="Hello there, world.",
    words=(
        Word("Hello", 0.0, 0.42, 0.98),
        Word("there,", 0.5, 0.91, 0.87),
        Word("world.", 1.0, 1.5, 0.9),
    ),
    audio_duration=2.0,
    stop_reason="eos",
)
EMPTY = Transcript(text="", words=(), audio_duration=1.0)


def test_format_timestamp():
    assert format_timestamp(0.0) == "00:00:00,000"
    assert format_timestamp(3723.0456) == "01:02:03,046"
    assert format_timestamp(59.9999, decimal=".") == "00:01:00.000"
    with pytest.raises(ValueError, match="non-negative"):
        format_timestamp(-1.0)


def test_srt_exact():
    assert write_result(THREE_WORDS, "srt") == (
        "1\n00:00:00,000 --> 00:00:01,500\nHello there, world.\n"
    )


def test_srt_splits_cues_and_numbers_them():
    t = Transcript(
        text="One. Two three",
        words=(
            Word("One.", 0.0, 0.5, 1.0),
            Word("Two", 0.6, 0.9, 1.0),
            Word("three", 1.0, 1.4, 1.0),
        ),
        audio_duration=2.0,
    )
    assert write_result(t, "srt") == (
        "1\n00:00:00,000 --> 00:00:00,500\nOne.\n\n2\n00:00:00,600 --> 00:00:01,400\nTwo three\n"
    )


def test_vtt():
    out = write_result(THREE_WORDS, "vtt")
    assert out == "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there, world.\n"


def test_cue_limits():
    words = [Word(f"word{i:02d}", i * 0.5, i * 0.5 + 0.4, 1.0) for i in range(30)]
    cues = subtitle_cues(words, max_chars=42, max_seconds=7.0)
    assert " ".join(c.text for c in cues) == " ".join(w.word for w in words)
    for cue in cues:
        assert len(cue.text) <= 42 and cue.end - cue.start <= 7.0
    slow = [Word("a", 0.0, 1.0, 1.0), Word("b", 7.5, 8.0, 1.0)]
    assert [c.text for c in subtitle_cues(slow)] == ["a", "b"]
    long_word = [Word("x" * 50, 0.0, 1.0, 1.0)]
    assert [c.text for c in subtitle_cues(long_word)] == ["x" * 50]


def test_empty_transcript():
    assert write_result(EMPTY, "srt") == ""
    assert write_result(EMPTY, "vtt") == "WEBVTT\n"
    assert write_result(EMPTY, "txt") == "\n"
    assert json.loads(write_result(EMPTY, "json"))["words"] == []
    assert json.loads(write_result(EMPTY, "verbose_json"))["segments"] == []


def test_text_without_word_times_is_one_cue():
    t = Transcript(text="no timings here", words=(), audio_duration=3.25)
    assert write_result(t, "srt") == "1\n00:00:00,000 --> 00:00:03,250\nno timings here\n"


def test_json_and_txt():
    t = Transcript(text="naïve café", words=(Word("naïve", 0.0, 0.5, 0.5),), audio_duration=1.0)
    out = write_result(t, "json")
    assert "naïve" in out and json.loads(out) == t.to_dict()
    assert write_result(t, "txt") == "naïve café\n"


def test_verbose_json():
    data = json.loads(write_result(THREE_WORDS, "verbose_json"))
    assert data["text"] == THREE_WORDS.text and data["language"] is None
    assert data["duration"] == 2.0
    assert data["words"][1] == {"word": "there,", "start": 0.5, "end": 0.91, "confidence": 0.87}
    assert data["segments"] == [{"id": 0, "start": 0.0, "end": 1.5, "text": "Hello there, world."}]


def test_all_formats_and_unknown():
    for fmt in FORMATS:
        assert isinstance(write_result(THREE_WORDS, fmt), str)
    with pytest.raises(ValueError, match="json, txt, srt, vtt, verbose_json"):
        write_result(THREE_WORDS, "docx")
