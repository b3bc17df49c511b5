"""A model that ships: float16 trained parts, its own decoding, loaded by its name."""

import json
from pathlib import Path

import pytest
import torch
from conftest import tone
from safetensors.torch import load_file
from test_letters import Hears
from test_spelling import chars_model

from voxlm import VoxLM, weights
from voxlm.cli import build_parser, main
from voxlm.cli_flags import decoding_options
from voxlm.decoding import DecodingOptions
from voxlm.lexicon import Lexicon

DECODING = {
    "letters_beam": 8,
    "lexicon": "lexicon.txt",
    "word_bonus": 2.0,
    "no_speech_check": False,
}


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = chars_model().eval()
    model.save_pretrained(tmp_path / "model")
    (tmp_path / "words.txt").write_text("the\ncat\nsat\n")
    return model, tmp_path


def test_ship_writes_float16_weights_and_the_decoding_and_loads_by_name(saved, monkeypatch):
    model, tmp = saved
    decoding = {**DECODING, "lexicon": str(tmp / "words.txt")}
    shipped = weights.ship(tmp / "model", "voxlm-test", decoding, root=tmp / "trained")
    state = load_file(shipped / weights.WEIGHTS_FILE)
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    assert not (shipped / "tokenizer.json").exists()  # the LLM's own, rebuilt from its name
    assert json.loads((shipped / weights.DECODING_FILE).read_text())["lexicon"] == "lexicon.txt"

    monkeypatch.setattr(weights, "SHIPPED_DIR", tmp / "trained")
    monkeypatch.chdir(tmp)
    loaded = VoxLM.from_pretrained("voxlm-test")
    assert loaded.decoding["letters_beam"] == 8 and "sat" in loaded.decoding["lexicon"]
    for name, value in model.trained_state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value.half().float())
    # Without options, transcribe decodes as the shipped decoding says: letters first (the
    # random LLM writing on its own would not say what the head hears).
    loaded.ctc_head = Hears("the cat")
    assert loaded.transcribe(tone(1.0), sample_rate=16000).text.lower() == "the cat"


def test_a_local_path_wins_over_a_shipped_name(saved, monkeypatch):
    _, tmp = saved
    monkeypatch.setattr(weights, "SHIPPED_DIR", tmp)
    monkeypatch.chdir(tmp / "model")
    assert weights.model_path("model") == tmp / "model"  # only SHIPPED_DIR has it
    (tmp / "model" / "model").mkdir()
    assert weights.model_path("model") == Path("model")
    assert weights.model_path("voxlm-smol-absent") == Path("voxlm-smol-absent")


def test_a_bad_decoding_file_names_the_file_and_field(tmp_path):
    (tmp_path / weights.DECODING_FILE).write_text('{"beam_width": 4}')
    with pytest.raises(ValueError, match=r"decoding.json: 'beam_width' is not a decoding option"):
        weights.read_decoding(tmp_path)
    (tmp_path / weights.DECODING_FILE).write_text('{"letters_beam": -1, "lexicon": "x.txt"}')
    with pytest.raises(FileNotFoundError, match="x.txt"):
        weights.read_decoding(tmp_path)
    (tmp_path / "x.txt").write_text("a b")
    with pytest.raises(ValueError, match="letters_beam must be >= 0"):
        weights.read_decoding(tmp_path)
    assert weights.read_decoding(tmp_path / "elsewhere") == {}


def test_flags_given_win_over_the_models_decoding_and_the_rest_take_it():
    lexicon = Lexicon(["a"])
    model_decoding = {"letters_beam": 16, "lexicon": lexicon, "word_bonus": 2.0}
    args = build_parser().parse_args(["transcribe", "x.wav", "--word-bonus", "0"])
    options = decoding_options(args, model_decoding)
    assert options.letters_beam == 16 and options.lexicon is lexicon
    assert options.word_bonus == 0.0  # the default, but given: it wins
    args = build_parser().parse_args(["transcribe", "x.wav", "--letters-beam", "0"])
    assert decoding_options(args, model_decoding).letters_beam == 0
    args = build_parser().parse_args(["transcribe", "x.wav", "--no-no-speech-check"])
    assert decoding_options(args, {"no_speech_check": True}).no_speech_check is False
    assert decoding_options(build_parser().parse_args(["transcribe", "x.wav"])) == (
        DecodingOptions()
    )


def test_wordfreq_lexicons_and_their_errors():
    pytest.importorskip("wordfreq", reason="wordfreq not installed (pip install voxlm[real])")
    lexicon = Lexicon.load("wordfreq:en:1000")
    assert len(lexicon) > 900 and lexicon.ranks["the"] < lexicon.ranks["people"]
    for bad in ("wordfreq:en", "wordfreq::10", "wordfreq:en:0"):
        with pytest.raises(ValueError, match="expected wordfreq:LANGUAGE:N"):
            Lexicon.load(bad)


def test_voxlm_ship_on_the_command_line(saved, monkeypatch, capsys):
    _, tmp = saved
    monkeypatch.setattr(weights, "SHIPPED_DIR", tmp / "trained")
    argv = ["ship", str(tmp / "model"), "--name", "m", "--decoding", "letters_beam=8"]
    argv += ["--decoding", f"lexicon={tmp / 'words.txt'}", "--decoding", "vad=energy"]
    assert main(argv) == 0
    saved_decoding = json.loads((tmp / "trained" / "m" / weights.DECODING_FILE).read_text())
    assert saved_decoding == {"letters_beam": 8, "lexicon": "lexicon.txt", "vad": "energy"}
    assert main([*argv[:4], "--decoding", "letters_beam"]) == 2
    assert "expected FIELD=VALUE" in capsys.readouterr().err
