import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from conftest import tone

import voxlm.cli
import voxlm.cli_synth
from voxlm.cli import build_parser, main
from voxlm.cli_flags import decoding_options, options_from_args
from voxlm.demo import DemoOptions, demo_config


def test_transcribe_json_to_stdout(wav_file, capsys):
    assert (
        main(["transcribe", str(wav_file), "--model", "voxlm-tiny", "--min-confidence", "0"]) == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"text", "words", "audio_duration"}
    assert abs(result["audio_duration"] - 1.5) < 1e-6


def test_a_bad_file_is_reported_and_the_rest_still_run(tmp_path, capsys):
    good = tmp_path / "good.wav"
    sf.write(good, tone(1.0), 16000)
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    code = main(
        [
            "transcribe",
            str(bad),
            str(good),
            "--model",
            "voxlm-tiny",
            "--format",
            "srt",
            "--output-dir",
            str(tmp_path / "out"),
        ]
    )
    assert code == 1
    assert (tmp_path / "out" / "good.srt").is_file()
    assert not (tmp_path / "out" / "bad.srt").exists()
    err = capsys.readouterr().err
    assert "bad.wav" in err and "1 of 2 files failed" in err


def test_user_errors_have_no_traceback(tmp_path):
    wav = tmp_path / "a.wav"
    sf.write(wav, tone(0.5), 16000)
    run = subprocess.run(
        [sys.executable, "-m", "voxlm", "transcribe", str(wav), "--model", "no-such-model"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 2
    assert "no-such-model" in run.stderr and "Traceback" not in run.stderr


def test_config_errors_name_the_key(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("model:\n  name: voxlm-tiny\n")
    assert main(["train", "--config", str(config), "--set", "training.phase1.epoch=2"]) == 2
    assert "training.phase1.epochs" in capsys.readouterr().err


def test_demo_flags_come_from_demo_options():
    parser = build_parser()
    assert options_from_args(DemoOptions, parser.parse_args(["demo"])) == DemoOptions()
    args = parser.parse_args(["demo", "--output-dir", "d", "--minutes", "3", "--no-ctc-positions"])
    options = options_from_args(DemoOptions, args)
    assert options.output_dir == Path("d") and options.minutes == 3.0
    assert options.ctc_positions is False and options.ctc_embeddings is None
    config = demo_config(options)
    assert config.model.ctc_positions is False and config.model.ctc_embeddings is True


def test_building_the_parser_imports_neither_torch_nor_transformers():
    code = (
        "import sys, voxlm.cli; voxlm.cli.build_parser(); "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr


def test_serve_without_the_server_extra_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # `import uvicorn` now fails
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert 'pip install "voxlm[server]"' in err and len(err.strip().splitlines()) == 1


class _BuggyModel:
    """A model whose transcribe fails the way a bug in VoxLM's own code would."""

    def to(self, device: str) -> "_BuggyModel":
        return self

    def transcribe(self, *args, **kwargs):
        raise TypeError("unsupported operand type(s)")


def test_a_bug_keeps_its_traceback(wav_file, monkeypatch):
    monkeypatch.setattr(voxlm.cli, "_load_model", lambda name: _BuggyModel())
    with pytest.raises(TypeError):
        main(["transcribe", str(wav_file)])

    def broken_synth(args):
        raise AttributeError("'NoneType' object has no attribute 'words'")

    monkeypatch.setattr(voxlm.cli_synth, "_run_synth", broken_synth)
    with pytest.raises(AttributeError):
        main(["synth", "--output-dir", "x"])


def test_word_list_and_n_gram_flags_load_their_files(tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("see me\nsee you\n")
    parser = build_parser()
    args = parser.parse_args(
        ["transcribe", "a.wav", "--lexicon", str(texts), "--ngram", str(texts)]
    )
    options = decoding_options(args)
    assert options.lexicon.words == ("me", "see", "you")
    assert options.ngram.vocabulary == {"me", "see", "you"}
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["transcribe", "a.wav", "--ngram", str(tmp_path / "none.txt")])
    assert exit_.value.code == 2
    assert "none.txt" in capsys.readouterr().err


def test_serve_loads_the_model_once(monkeypatch):
    pytest.importorskip("fastapi")
    uvicorn = pytest.importorskip("uvicorn")
    from voxlm.model import VoxLM

    loads = []
    original = VoxLM.from_pretrained.__func__

    def counting(cls, *args, **kwargs):
        loads.append(args)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(VoxLM, "from_pretrained", classmethod(counting))
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port: None)
    assert main(["serve", "--model", "voxlm-tiny"]) == 0
    assert len(loads) == 1


def test_synth_takes_its_voices_and_held_out_voice_from_flags(tmp_path, capsys):
    out = tmp_path / "corpus"
    flags = ["--n-train", "4", "--n-dev", "0", "--n-test", "2", "--workers", "1"]
    voices = ["--voices", "en-us, en+f2", "--held-out-voice", "none"]
    assert main(["synth", "--output-dir", str(out), *flags, *voices]) == 0
    assert json.loads(capsys.readouterr().out)["voices"] == {"0": "en-us", "1": "en+f2"}
    assert main(["synth", "--output-dir", str(out), *flags, "--voices", "en,flite:nobody"]) != 0
    assert "flite:nobody" in capsys.readouterr().err
