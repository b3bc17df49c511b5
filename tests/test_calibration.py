"""Calibrated word confidence: the metrics against hand-computed cases, the maps on synthetic
over-confident scores, calibration.json through save and load, transcription and the CLI."""

import json
import logging
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import check_transcript, tiny_config, tone

from voxlm.calibration import (
    CALIBRATION_FILE,
    Calibration,
    NothingToCalibrate,
    ReliabilityBin,
    apply_map,
    brier_score,
    confidence_report,
    expected_calibration_error,
    fit,
    fit_isotonic,
    fit_platt,
    plot_reliability,
    reliability_bins,
    scored_words,
)
from voxlm.cli import main
from voxlm.data.manifest import Utterance, write_manifest
from voxlm.decoding import DecodingOptions
from voxlm.model import VoxLM
from voxlm.results import Transcript, Word
from voxlm.weights import fingerprint

# A random model writes words with these (few: a short token budget keeps the tests fast).
DECODING = DecodingOptions(min_confidence=0, vad="energy", max_tokens_per_second=10)


# ---- metrics ------------------------------------------------------------------------------------
def test_bins_ece_and_brier_by_hand():
    confidences = [0.9, 0.1, 0.3, 0.2, 0.4, 0.8]
    correct = [True, False, True, False, False, True]
    # sorted: 0.1 F, 0.2 F | 0.3 T, 0.4 F | 0.8 T, 0.9 T
    assert reliability_bins(confidences, correct, n_bins=3) == [
        ReliabilityBin(0.1, 0.2, 2, pytest.approx(0.15), 0.0),
        ReliabilityBin(0.3, 0.4, 2, pytest.approx(0.35), 0.5),
        ReliabilityBin(0.8, 0.9, 2, pytest.approx(0.85), 1.0),
    ]
    # |0 - 0.15|, |0.5 - 0.35|, |1 - 0.85|, each bin a third of the words
    assert expected_calibration_error(confidences, correct, n_bins=3) == pytest.approx(0.15)
    # (0.01 + 0.01 + 0.49 + 0.04 + 0.16 + 0.04) / 6
    assert brier_score(confidences, correct) == pytest.approx(0.75 / 6)


def test_bins_are_equal_mass_and_cover_every_word():
    rng = np.random.default_rng(0)
    x, y = rng.random(100) ** 0.2, rng.random(100) < 0.7  # most scores near 1
    bins = reliability_bins(x, y)
    assert len(bins) == 15 and sum(b.count for b in bins) == 100
    assert {b.count for b in bins} == {6, 7}
    assert all(a.upper <= b.lower for a, b in zip(bins, bins[1:], strict=False))
    assert [b.count for b in reliability_bins([0.2, 0.9], [True, False])] == [1, 1]


def test_a_tie_is_never_split_between_bins():
    x = [0.5, 0.9, 0.5, 0.5, 0.9, 0.5]
    bins = reliability_bins(x, [True, True, False, True, True, False], n_bins=3)
    assert [(b.lower, b.upper, b.count, b.accuracy) for b in bins] == [
        (0.5, 0.5, 4, 0.5),
        (0.9, 0.9, 2, 1.0),
    ]
    assert [b.count for b in reliability_bins([0.3] * 5, [True] * 5)] == [5]


def test_a_calibrated_set_has_no_error_and_no_words_have_no_metrics():
    # every bin's accuracy equals its confidence: 4 words at 0.25 (1 right), 4 at 0.75 (3 right)
    x = [0.25] * 4 + [0.75] * 4
    y = [True, False, False, False, True, True, True, False]
    assert expected_calibration_error(x, y, n_bins=2) == pytest.approx(0.0)
    assert reliability_bins([], []) == []
    assert expected_calibration_error([], []) is None and brier_score([], []) is None
    report = confidence_report([], [])
    assert report.n_words == 0 and report.ece is None and report.auroc is None
    with pytest.raises(ValueError, match="equal-length"):
        expected_calibration_error([0.5, 0.6], [True])


# ---- the maps -----------------------------------------------------------------------------------
def overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Words right with probability q in [0.3, 1), scored sigmoid(3 logit(q) + 1): far too sure."""
    rng = np.random.default_rng(seed)
    q = rng.uniform(0.3, 0.999, n)
    score = 1 / (1 + np.exp(-(3 * np.log(q / (1 - q)) + 1)))
    return score, rng.random(n) < q


def test_fitted_maps_lower_the_error_on_held_out_scores():
    dev, test = overconfident(2000, seed=1), overconfident(2000, seed=2)
    raw_ece = expected_calibration_error(*test)
    assert raw_ece > 0.1
    platt = fit_platt(*dev)
    assert platt["a"] == pytest.approx(1 / 3, abs=0.05)  # the inverse of the distortion
    assert platt["b"] == pytest.approx(-1 / 3, abs=0.1)
    isotonic = fit_isotonic(*dev)
    for method, parameters in (("platt", platt), ("isotonic", isotonic)):
        assert expected_calibration_error(apply_map(method, parameters, test[0]), test[1]) < 0.05
    calibration, held_out = fit(*dev)
    assert calibration.method in ("platt", "isotonic")
    assert calibration.dev_ece < 0.05 < calibration.dev_ece_raw
    assert expected_calibration_error(held_out, dev[1]) == pytest.approx(calibration.dev_ece)
    assert expected_calibration_error(calibration(test[0]), test[1]) < raw_ece / 3


def test_isotonic_pools_violators():
    fitted = fit_isotonic([0.1, 0.2, 0.3, 0.4], [True, False, True, True])
    assert fitted == {"x": [0.1, 0.2, 0.3, 0.4], "y": [0.5, 0.5, 1.0, 1.0]}
    assert apply_map("isotonic", fitted, [0.0, 0.25, 1.0]).tolist() == [0.5, 0.75, 1.0]


def test_the_choice_never_does_worse_than_the_raw_score_and_needs_words():
    rng = np.random.default_rng(3)
    q = rng.random(500)
    calibration, _ = fit(q, rng.random(500) < q)  # already calibrated
    assert calibration.dev_ece <= calibration.dev_ece_raw
    assert set(calibration.cross_validated_ece) == {"identity", "platt", "isotonic"}
    with pytest.raises(NothingToCalibrate, match="at least 5"):
        fit([0.5, 0.6], [True, False])


def test_scored_words_skip_failed_files_and_punctuation():
    utterances = [Utterance("a", "a.wav", "the cat", 1.0, speaker="7"), Utterance("b", "", "x", 1)]
    words = (
        Word("the", 0, 0.1, 0.6, raw_confidence=0.9),
        Word("dog", 0.1, 0.2, 0.4),
        Word("!", 0.2, 0.2, 1.0),
    )
    words = scored_words(utterances, [Transcript("the dog !", words, 1.0), None])
    assert words.confidence.tolist() == [0.6, 0.4]
    assert words.raw_confidence.tolist() == [0.9, 0.4]
    assert words.correct.tolist() == [True, False] and words.speaker.tolist() == ["7", "7"]


def test_reliability_diagram_is_written(tmp_path):
    bins = reliability_bins(*overconfident(300, seed=4))
    plot_reliability(bins, tmp_path / "r.png", "over-confident")
    plot_reliability([], tmp_path / "empty.png", "no words")
    assert (tmp_path / "r.png").stat().st_size > 1000 and (tmp_path / "empty.png").is_file()


# ---- a calibrated model -------------------------------------------------------------------------
def calibrated(model: VoxLM, a: float = 0.5, b: float = -0.2) -> Calibration:
    return Calibration(
        method="platt",
        parameters={"a": a, "b": b},
        n_words=100,
        n_correct=60,
        n_utterances=10,
        dev_ece_raw=0.2,
        dev_ece=0.03,
        cross_validated_ece={"identity": 0.2, "platt": 0.03, "isotonic": 0.04},
        weights_sha256=fingerprint(model.trained_state_dict()),
    )


def test_calibration_json_survives_save_load_and_resave(tmp_path, caplog):
    model = VoxLM.from_config(tiny_config()).eval()
    model.calibration = calibrated(model)
    model.save_pretrained(tmp_path / "m")
    stored = json.loads((tmp_path / "m" / CALIBRATION_FILE).read_text())
    assert stored["method"] == "platt" and stored["dev_ece"] == 0.03
    loaded = VoxLM.from_pretrained(tmp_path / "m")
    assert loaded.calibration == model.calibration
    loaded.save_pretrained(tmp_path / "again")
    assert VoxLM.from_pretrained(tmp_path / "again").calibration == model.calibration
    # trained on after calibrating: the map no longer describes the weights
    with torch.no_grad():
        loaded.projector.down.weight.add_(0.01)
    loaded.save_pretrained(tmp_path / "trained")
    with caplog.at_level(logging.WARNING, logger="voxlm"):
        assert VoxLM.from_pretrained(tmp_path / "trained").calibration is None
    assert "fitted on other weights" in caplog.text
    model.calibration = None
    model.save_pretrained(tmp_path / "plain")
    assert not (tmp_path / "plain" / CALIBRATION_FILE).exists()
    (tmp_path / "m" / CALIBRATION_FILE).write_text('{"method": "cubic"}')
    with pytest.raises(ValueError, match="calibration"):
        VoxLM.from_pretrained(tmp_path / "m")


def test_transcription_returns_calibrated_and_raw_confidence():
    model = VoxLM.from_config(tiny_config()).eval()
    clip = tone(1.0)
    plain = model.transcribe(clip, sample_rate=16000, options=DECODING)
    model.calibration = calibrated(model)
    result = model.transcribe(clip, sample_rate=16000, options=DECODING)
    assert len(result.words) > 0
    check_transcript(result)
    raw = [w.confidence for w in plain.words]
    assert [w.raw_confidence for w in result.words] == raw
    assert [w.confidence for w in result.words] == pytest.approx(model.calibration(raw).tolist())
    assert all("raw_confidence" in w for w in result.to_dict()["words"])
    assert all("raw_confidence" not in w for w in plain.to_dict()["words"])
    off = replace(DECODING, calibrate=False)
    assert model.transcribe(clip, sample_rate=16000, options=off) == plain


def test_calibrate_command_fits_writes_and_reports(tmp_path, capsys):
    model = VoxLM.from_config(tiny_config()).eval()
    model.save_pretrained(tmp_path / "model")
    clips = [tone(0.8, seed=i) for i in range(4)]
    hypotheses = model.transcribe(clips, sample_rate=16000, options=DECODING)
    utterances = []
    for i, (clip, hyp) in enumerate(zip(clips, hypotheses, strict=True)):
        sf.write(tmp_path / f"{i}.wav", clip, 16000)
        text = hyp.text if i % 2 else "hello world"  # half the clips right, half wrong
        utterances.append(Utterance(str(i), str(tmp_path / f"{i}.wav"), text, 0.8))
    write_manifest(tmp_path / "dev.jsonl", utterances)
    code = main(
        [
            "calibrate",
            "--model",
            str(tmp_path / "model"),
            "--data",
            str(tmp_path / "dev.jsonl"),
            "--output-dir",
            str(tmp_path / "plots"),
            "--min-confidence",
            "0",
            "--max-tokens-per-second",
            "10",
            "--vad",
            "energy",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "ECE" in out and "AUROC" in out and "cross-validated" in out
    for name in ("reliability.png", "reliability_raw.png"):
        assert (tmp_path / "plots" / name).stat().st_size > 0
    stored = json.loads((tmp_path / "model" / CALIBRATION_FILE).read_text())
    assert stored["n_words"] >= 5 and stored["decoding"]["vad"] == "energy"
    assert "calibrate" not in stored["decoding"]
    reloaded = VoxLM.from_pretrained(tmp_path / "model")
    assert reloaded.calibration is not None and reloaded.calibration.method == stored["method"]


def test_calibrate_command_needs_a_model_directory(tmp_path, capsys):
    code = main(["calibrate", "--model", "voxlm-tiny", "--data", str(tmp_path / "dev.jsonl")])
    assert code == 2 and "not a saved model directory" in capsys.readouterr().err
