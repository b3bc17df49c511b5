"""Bulk transcription: folders and manifests, resuming, failures, sharding and prefetching, and
two real processes under ``accelerate launch``."""

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import soundfile as sf
from conftest import tone

import voxlm.bulk
from voxlm.bulk import BulkInput, list_inputs, prefetch, shard, write_text_atomic
from voxlm.cli import main

# Energy detector: no Silero model to load, and the tone is speech to it.
FLAGS = ["--model", "voxlm-tiny", "--format", "txt", "--vad", "energy", "--batch-size", "2"]


def make_folder(root: Path, names: list[str]) -> Path:
    for i, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / name, tone(0.5 + 0.1 * i, seed=i), 16000)
    return root


def transcribe(*args: object) -> int:
    return main(["transcribe", *map(str, args), *FLAGS])


def test_a_folder_is_searched_and_same_stems_in_subfolders_keep_apart(tmp_path, capsys):
    folder = make_folder(tmp_path / "in", ["a/x.wav", "b/x.wav", "b/c/y.flac", "z.ogg"])
    (folder / "notes.txt").write_text("not audio, not listed")
    assert transcribe(folder, "--output-dir", tmp_path / "out") == 0
    written = sorted(
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")
    )
    assert written == ["a", "a/x.txt", "b", "b/c", "b/c/y.txt", "b/x.txt", "z.txt"]
    assert "4 files: 4 transcribed, 0 skipped (output exists), 0 failed" in capsys.readouterr().err


def test_a_manifest_lists_files_relative_to_its_folder_or_absolute(tmp_path):
    folder = make_folder(tmp_path / "data", ["audio/one.wav", "audio/two.wav"])
    outside = make_folder(tmp_path / "elsewhere", ["three.wav"]) / "three.wav"
    lines = [
        {"audio_filepath": "audio/one.wav"},  # no text: a manifest still to transcribe
        {"audio_filepath": str(folder / "audio" / "two.wav"), "text": "two", "duration": 0.6},
        {"audio_filepath": str(outside)},
    ]
    manifest = folder / "todo.jsonl"
    manifest.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    inputs = list_inputs([manifest])
    assert [x.name for x in inputs] == ["audio/one", "audio/two", str(outside)[1:-4]]
    assert transcribe(manifest, "--output-dir", tmp_path / "out") == 0
    assert (tmp_path / "out" / "audio" / "one.txt").is_file()
    assert (tmp_path / "out" / "audio" / "two.txt").is_file()
    assert (tmp_path / "out" / f"{inputs[2].name}.txt").is_file()


def test_a_bad_manifest_line_names_its_file_and_line(tmp_path, capsys):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"audio_filepath": "a.wav"}\n{"audio": "b.wav"}\n')
    assert transcribe(manifest) == 2
    assert f"{manifest}:2" in capsys.readouterr().err


def test_outputs_that_would_collide_are_refused_before_any_work(tmp_path, capsys):
    folder = make_folder(tmp_path / "in", ["a.wav", "a.flac"])
    assert transcribe(folder, "--output-dir", tmp_path / "out") == 2
    assert "would both be written as a.<format>" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_rerun_skips_what_is_written_and_overwrite_redoes_it(tmp_path, capsys):
    folder = make_folder(tmp_path / "in", ["a.wav", "b.wav", "c.wav"])
    out = tmp_path / "out"
    assert transcribe(folder, "--output-dir", out) == 0
    (out / "a.txt").write_text("kept\n")
    (out / "b.txt").unlink()  # as if the run had stopped before b
    capsys.readouterr()
    assert transcribe(folder, "--output-dir", out) == 0
    assert (out / "a.txt").read_text() == "kept\n" and (out / "b.txt").is_file()
    assert "3 files: 1 transcribed, 2 skipped" in capsys.readouterr().err
    assert transcribe(folder, "--output-dir", out, "--overwrite") == 0
    assert (out / "a.txt").read_text() != "kept\n"
    assert "3 files: 3 transcribed, 0 skipped" in capsys.readouterr().err


def test_bad_files_are_listed_at_the_end_and_the_others_written(tmp_path, capsys):
    folder = make_folder(tmp_path / "in", ["a.wav", "d.wav"])
    (folder / "b.wav").write_text("not audio")
    (folder / "c.wav").write_bytes(b"")
    out = tmp_path / "out"
    assert transcribe(folder, "--output-dir", out) == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "d.txt"]
    err = capsys.readouterr().err.splitlines()
    assert err[-4] == "2 of 4 files failed:"
    assert "b.wav: not a readable audio file" in err[-3] and "c.wav: empty file" in err[-2]
    assert err[-1].startswith("4 files: 2 transcribed, 0 skipped (output exists), 2 failed")


def test_shards_partition_the_sorted_list_and_keep_the_given_order():
    paths = [f"{d}/{i}.wav" for d in "ba" for i in range(7)]
    random.Random(0).shuffle(paths)
    inputs = [BulkInput(Path(p), p) for p in paths]
    ranked = sorted(paths)
    for count in (1, 2, 3, 5, 20):
        shards = [shard(inputs, index, count) for index in range(count)]
        assert sorted(x.name for s in shards for x in s) == ranked  # each file exactly once
        for index, mine in enumerate(shards):
            assert {x.name for x in mine} == set(ranked[index::count])
            assert mine == [x for x in inputs if x in mine]  # in the order given
    with pytest.raises(ValueError, match="process index 2"):
        shard(inputs, 2, 2)


def test_prefetch_decodes_ahead_in_order_and_hands_errors_over(tmp_path, monkeypatch):
    make_folder(tmp_path, ["0.wav", "1.wav", "2.wav", "3.wav", "4.wav"])
    (tmp_path / "2.wav").write_text("not audio")
    inputs = list_inputs([tmp_path])
    started = []
    load = voxlm.bulk.load_audio
    monkeypatch.setattr(voxlm.bulk, "load_audio", lambda path: started.append(path) or load(path))
    stream = prefetch(inputs, depth=2)
    first = next(stream)
    deadline = time.monotonic() + 10
    while len(started) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(started) == 3  # the one handed out and two ahead, no more
    rest = list(stream)
    assert [item.name for item, _ in [first, *rest]] == ["0", "1", "2", "3", "4"]
    assert isinstance(rest[1][1], ValueError) and rest[2][1].dtype.name == "float32"
    assert not any(t.name.startswith("voxlm-decode") for t in threading.enumerate())


def test_an_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "a.json"

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(target, "{}\n")
    assert list(target.parent.iterdir()) == []
    monkeypatch.undo()
    write_text_atomic(target, "{}\n")
    assert target.read_text() == "{}\n" and list(target.parent.iterdir()) == [target]


def test_two_processes_under_accelerate_launch_share_the_files(tmp_path):
    names = [f"{d}/{i}.wav" for d in "ab" for i in range(3)]
    folder = make_folder(tmp_path / "in", names)
    out = tmp_path / "out"
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
    launch += ["--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no"]
    launch += ["--dynamo_backend", "no", "--main_process_port", "0"]  # a free port
    command = [*launch, "-m", "voxlm", "transcribe", str(folder), "--output-dir", str(out)]
    run = subprocess.run(
        [*command, *FLAGS], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert run.returncode == 0, run.stderr[-3000:]
    # Both processes report to the main one, which alone prints: each file was done once.
    assert run.stderr.count("6 files: 6 transcribed, 0 skipped") == 1, run.stderr[-3000:]
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.txt"))
    assert written == sorted(n.replace(".wav", ".txt") for n in names)
