"""The maintained benchmarks run: each at toy size, so that they keep working as the code moves."""

import importlib.util
import sys
from pathlib import Path

import pytest

from voxlm.model import VoxLM

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def load(name: str):
    """A benchmarks/ script as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_speed(capsys):
    load("speed").main(["--quick", "--clips", "2", "--repeats", "1"])
    out = capsys.readouterr().out
    assert "whisper-tiny" in out and "transcribe 2 clips" in out


def test_step_cost(synth_corpus, capsys):
    argv = ["--train", str(synth_corpus / "train.jsonl"), "--batches", "1", "--batch-size", "2"]
    load("step_cost").main([*argv, "--rounds", "1"])
    assert "ratio" in capsys.readouterr().out


def test_ngram_fusion(tmp_path, synth_corpus, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "data").symlink_to(synth_corpus)
    VoxLM.from_pretrained("voxlm-tiny").save_pretrained(run / "model")
    load("ngram_fusion").main([str(run), "--weights", "0,0.5", "--split", "dev"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("weight") and len(lines) == 4


@pytest.mark.parametrize("name", ["speed", "step_cost", "ngram_fusion"])
def test_benchmarks_do_not_change_the_import_path(name):
    before = list(sys.path)
    load(name)
    assert sys.path == before
