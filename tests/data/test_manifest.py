import json
import logging

import numpy as np
import pytest
import soundfile as sf

from voxlm.data.batching import collate
from voxlm.data.manifest import (
    Utterance,
    UtteranceDataset,
    WordTiming,
    read_manifest,
    write_manifest,
)


def _utterances(folder):
    audio = folder / "audio"
    audio.mkdir()
    out = []
    for i in range(3):
        path = audio / f"u{i}.flac"
        sf.write(path, np.sin(np.arange(1600 * (i + 1)) / 5).astype(np.float32) * 0.3, 16000)
        words = (WordTiming("hello", 0.01, 0.04), WordTiming("world", 0.05, 0.09))
        words = words if i != 1 else None
        out.append(Utterance(f"u{i}", str(path), "hello world", 0.1 * (i + 1), words, "7"))
    return out


def test_round_trip_with_relative_paths(tmp_path):
    utterances = _utterances(tmp_path)
    manifest = tmp_path / "train.jsonl"
    write_manifest(manifest, utterances)
    first = json.loads(manifest.read_text().splitlines()[0])
    assert first["audio_filepath"] == "audio/u0.flac"
    assert first["words"][1] == {"word": "world", "start": 0.05, "end": 0.09}
    assert read_manifest(manifest) == utterances
    assert isinstance(read_manifest(manifest)[0].words[0], WordTiming)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ('{"duration": 1.0, "text": "a"}', "audio_filepath"),
        ('{"audio_filepath": "a.flac", "duration": "x", "text": "a"}', "duration"),
        (
            '{"audio_filepath": "a.flac", "duration": 1, "text": "a", "words": [{"word": "a"}]}',
            "start",
        ),
        ("{not json", "JSON"),
    ],
)
def test_bad_line_names_file_line_and_field(tmp_path, line, field):
    manifest = tmp_path / "bad.jsonl"
    good = '{"audio_filepath": "a.flac", "duration": 1.0, "text": "a"}'
    manifest.write_text(good + "\n" + line + "\n")
    with pytest.raises(ValueError, match=rf"bad.jsonl:2.*{field}"):
        read_manifest(manifest)


def test_corrupt_file_is_skipped_with_a_warning(tmp_path, caplog):
    utterances = _utterances(tmp_path)
    (tmp_path / "audio" / "u1.flac").write_bytes(b"fLaC this is not audio" * 10)
    dataset = UtteranceDataset(utterances)
    with caplog.at_level(logging.WARNING, logger="voxlm"):
        items = [dataset[i] for i in range(len(dataset))]
    assert items[1] is None
    assert "u1" in caplog.text
    assert items[0]["audio"].dtype == np.float32 and len(items[0]["audio"]) == 1600
    assert items[2]["words"][0] == WordTiming("hello", 0.01, 0.04)
    assert items[2]["words"][0].start == 0.01  # batches carry WordTiming, not the JSON object
    batch = collate(items)
    assert batch["ids"] == ["u0", "u2"] and batch["audio"].shape == (2, 4800)
    assert collate([items[1]]) is None
