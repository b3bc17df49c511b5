"""`voxlm demo` end to end, shrunk to seconds: every file and metric it promises."""

import json
from pathlib import Path

from voxlm.cli import build_parser
from voxlm.cli_flags import decoding_options
from voxlm.config import load_config
from voxlm.data.manifest import read_manifest
from voxlm.data.nonspeech import NON_SPEECH_KINDS
from voxlm.data.synth import DEFAULT_VOICES
from voxlm.demo import (
    DECODING_FIELDS,
    DemoOptions,
    decoding_command,
    demo_config,
    run_demo,
    summary_table,
)
from voxlm.evaluate import normalize_text
from voxlm.lexicon import Lexicon
from voxlm.model import VoxLM
from voxlm.ngram import NGramLM


def test_the_demo_leaves_a_model_metrics_an_example_its_lexicon_and_n_gram_text(tmp_path):
    options = DemoOptions(
        output_dir=tmp_path,
        minutes=0.05,
        phase2_minutes=0.02,
        n_train=24,
        n_dev=4,
        n_test=6,
        ctc_only_steps=2,
        beam_size=2,
    )
    metrics = run_demo(options, progress=False)
    promised = ("wer", "cer", "onset_mae_ms", "onset_within_50ms", "confidence_auroc")
    assert set(promised) | {"train_minutes", "total_minutes"} <= set(metrics)
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert metrics["decoding"]["beam_size"] == 2
    for name in ("example.json", "example.srt", "alignment.png"):
        assert (tmp_path / name).stat().st_size > 0
    VoxLM.from_pretrained(tmp_path / "model")
    lexicon = Lexicon.from_file(tmp_path / "lexicon.txt")
    assert metrics["decoding"]["lexicon_words"] == len(lexicon)
    assert NGramLM.from_file(tmp_path / "ngram.txt").vocabulary == set(lexicon.words)
    assert metrics["decoding"]["ngram_order"] == 3
    test_words = {
        w for u in read_manifest(tmp_path / "data" / "test.jsonl") for w in u.text.split()
    }
    assert all(normalize_text(w) in lexicon for w in test_words)  # the corpus keeps its promise
    test = read_manifest(tmp_path / "data" / "test.jsonl")
    assert set(metrics["wer_by_speaker"]) == {u.speaker for u in test}
    assert metrics["wer_training_voices"] is not None
    assert metrics["wer_unseen_voice"] == metrics["wer_by_speaker"].get(str(len(DEFAULT_VOICES)))
    # The speech detector's figures: the non-speech set decoded, quiet test speech still found.
    assert [r["kind"] for r in metrics["nonspeech"]] == list(NON_SPEECH_KINDS)
    assert metrics["vad"] == "silero" and metrics["quiet_missed"] == []
    assert {"confidence_ece_raw", "confidence_ece", "ece_by_voice"} <= set(metrics)
    table = summary_table(metrics)
    assert f"0 of {len(test)} (silero)" in table and "confidence ECE" in table


BEFORE = json.loads((Path(__file__).parent / "configs_before_registry.json").read_text())


def _without_window_keys(config: dict) -> dict:
    """The keys added after the snapshot: voxlm-tiny decodes each speech region alone, and the
    demo's corpus speaks with the synthesiser's own voices, its CTC head spells tokens."""
    assert config["model"].pop("window_seconds") == 8
    assert config["model"].pop("pack_windows") is False
    assert config["model"].pop("ctc_units") == "tokens"
    assert config["data"].pop("voices") == []
    return config


def _with_step_budget(config: dict) -> dict:
    """The recipe before its step budgets: 1,030 + 300 steps, each capped in time."""
    _without_window_keys(config)
    training = config["training"]
    assert training["phase1"]["max_steps"] == 1030 and training["phase1"]["max_minutes"] == 15
    assert training["phase2"]["max_steps"] == 300 and training["phase2"]["max_minutes"] == 3
    training["phase1"].update(max_steps=None, max_minutes=6.5)
    training["phase2"].update(max_steps=None, max_minutes=1.0)
    return config


def test_the_demo_config_is_the_one_demo_py_built_before_the_recipe_file():
    default = json.loads(json.dumps(demo_config(DemoOptions()).to_dict()))
    assert _with_step_budget(default) == BEFORE["demo_default"]
    changed = DemoOptions(
        output_dir=Path("d"),
        minutes=3,
        phase2_minutes=0.5,
        batch_size=8,
        learning_rate=1e-3,
        ctc_weight=0.5,
        ctc_only_steps=7,
        span_ctc_weight=0.0,
        span_ctc_steps=0,
        alignment_weight=0.1,
        ctc_embeddings=False,
        ctc_positions=False,
        sortagrad=False,
        seed=3,
    )
    custom = json.loads(json.dumps(demo_config(changed).to_dict()))
    assert _without_window_keys(custom) == BEFORE["demo_custom"]


def test_the_long_recipe_is_the_demo_recipe_with_more_steps():
    long, demo = (
        load_config(Path(__file__).parent.parent / "configs" / "voxlm-tiny-long.yaml"),
        demo_config(DemoOptions()),
    )
    assert long.model == demo.model
    assert long.training.phase1.max_steps == 3450 and long.training.phase2.max_steps == 460
    assert long.training.phase1.learning_rate == demo.training.phase1.learning_rate


def test_the_printed_command_decodes_as_the_demo_did(tmp_path):
    options = DemoOptions(output_dir=tmp_path, beam_size=3, ngram_weight=0.7)
    for name in ("lexicon.txt", "ngram.txt"):
        (tmp_path / name).write_text("see me\n")
    argv = decoding_command(options).split()[1:]
    decoding = decoding_options(build_parser().parse_args(argv))
    for name in DECODING_FIELDS:
        assert getattr(decoding, name) == getattr(options, name)
    assert decoding.lexicon.words == ("me", "see") and decoding.ngram is not None
