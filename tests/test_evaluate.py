import itertools
import math

import numpy as np
import pytest
import soundfile as sf

from voxlm.data.manifest import Utterance
from voxlm.decoding import DecodingOptions, Transcript, Word
from voxlm.evaluate import (
    align_words,
    char_error_rate,
    confidence_auroc,
    evaluate,
    normalize_text,
    onset_errors,
    proportional_onsets,
    score,
    word_correctness,
    word_error_rate,
)
from voxlm.model import VoxLM


def transcript(words: list[tuple[str, float, float, float]], duration: float = 3.0) -> Transcript:
    ws = tuple(Word(*w) for w in words)
    return Transcript(" ".join(w.word for w in ws), ws, duration, "eos")


def test_normalize_text():
    assert normalize_text("  Hello,   World!  ") == "hello world"
    assert normalize_text("Don't stop; it's 5 o\u2019clock.") == "don't stop it's 5 o'clock"
    assert normalize_text("'quoted' well-known \"text\"") == "quoted well known text"
    assert normalize_text("...") == ""


def test_wer_substitution_deletion_insertion():
    assert word_error_rate(["the cat sat"], ["the cat sat"]) == 0.0
    assert word_error_rate(["the cat sat"], ["the dog sat"]) == pytest.approx(1 / 3)
    assert word_error_rate(["the cat sat"], ["the sat"]) == pytest.approx(1 / 3)
    assert word_error_rate(["the cat sat"], ["the cat sat down"]) == pytest.approx(1 / 3)
    assert word_error_rate(["The cat, sat."], ["the cat sat"]) == 0.0  # normalised
    # corpus level: total edits / total reference words, not a mean of per-utterance rates
    assert word_error_rate(["a b c d", "e"], ["a b c d", "x"]) == pytest.approx(1 / 5)
    assert word_error_rate([""], [""]) == 0.0
    assert word_error_rate([""], ["extra"]) == 1.0
    with pytest.raises(ValueError, match="2 references but 1"):
        word_error_rate(["a", "b"], ["a"])


def test_cer():
    assert char_error_rate(["abcd"], ["abxd"]) == pytest.approx(1 / 4)
    assert char_error_rate(["ab cd"], ["ab cd"]) == 0.0
    assert char_error_rate(["ab cd"], ["abcd"]) == pytest.approx(1 / 5)  # the space counts


def test_align_words():
    assert align_words(["a", "b", "c"], ["a", "x", "c"]) == [(0, 0), (2, 2)]
    assert align_words(["a", "b", "c"], ["a", "c"]) == [(0, 0), (2, 1)]
    assert align_words(["a", "c"], ["a", "b", "c"]) == [(0, 0), (1, 2)]
    assert align_words([], ["a"]) == []
    with pytest.raises(ValueError, match="whitespace"):
        align_words(["a b"], ["a"])


def brute_auroc(conf, correct):
    pos = [c for c, k in zip(conf, correct, strict=True) if k]
    neg = [c for c, k in zip(conf, correct, strict=True) if not k]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_confidence_auroc_matches_pair_count_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        conf = rng.integers(0, 5, size=30) / 4  # many ties
        correct = rng.random(30) < 0.6
        if correct.all() or not correct.any():
            continue
        assert confidence_auroc(conf, correct) == pytest.approx(brute_auroc(conf, correct))
    assert confidence_auroc([0.9, 0.8, 0.1], [True, True, False]) == 1.0
    assert confidence_auroc([0.5, 0.5], [True, False]) == 0.5
    assert confidence_auroc([0.9, 0.1], [True, True]) is None
    assert confidence_auroc([], []) is None


def test_onset_errors_skip_misrecognised_words():
    ref = [("The", 0.10, 0.30), ("cat", 0.40, 0.70), ("sat.", 0.80, 1.10)]
    hyp = transcript([("the", 0.12, 0.3, 0.9), ("hat", 0.41, 0.7, 0.4), ("sat", 0.75, 1.1, 0.8)])
    errors = onset_errors(ref, hyp)
    assert errors == pytest.approx([0.02, -0.05])
    assert word_correctness("The cat sat.", hyp) == [True, False, True]


def test_proportional_onsets():
    assert proportional_onsets("ab cdef gh", 2.0) == pytest.approx([0.0, 0.5, 1.5])
    assert proportional_onsets("", 1.0) == []


def test_score_report():
    utts = [
        Utterance(
            "a",
            "a.wav",
            "the cat sat",
            1.0,
            (("the", 0.0, 0.2), ("cat", 0.3, 0.5), ("sat", 0.6, 0.9)),
        ),
        Utterance("b", "b.wav", "a dog", 1.0),
    ]
    hyps = [
        transcript([("the", 0.01, 0.2, 0.9), ("cat", 0.33, 0.5, 0.8), ("mat", 0.6, 0.9, 0.3)], 1.0),
        transcript([("a", 0.0, 0.1, 0.7), ("dog", 0.2, 0.5, 0.95)], 1.0),
    ]
    report = score(utts, hyps, decode_seconds=0.5)
    assert report.wer == pytest.approx(1 / 5)
    assert report.n_timed_words == 2
    assert report.onset_mae_ms == pytest.approx(20.0)
    assert report.onset_bias_ms == pytest.approx(20.0)
    assert report.onset_within_50ms == 1.0
    assert report.confidence_auroc == 1.0  # the only wrong word has the lowest confidence
    assert report.mean_confidence_wrong == pytest.approx(0.3)
    assert report.real_time_factor == pytest.approx(0.25)
    assert report.stop_reasons == {"eos": 2}
    # baseline on "the cat sat" over 1 s: onsets 0, 1/3, 2/3 against 0, 0.3, 0.6
    assert report.baseline_onset_mae_ms == pytest.approx((0 + 100 / 3 + 200 / 3) / 3)
    assert report.wer_by_speaker == {}  # no utterance names its speaker


def test_wer_by_speaker():
    utts = [
        Utterance("1", "1.wav", "the cat sat", 1.0, speaker="7"),
        Utterance("2", "2.wav", "a dog ran", 1.0, speaker="12"),
        Utterance("3", "3.wav", "a dog sat", 1.0, speaker="7"),
        Utterance("4", "4.wav", "no speaker here", 1.0),
    ]
    hyps = [
        transcript([("the", 0.0, 0.2, 0.9), ("cat", 0.3, 0.5, 0.9), ("sat", 0.6, 0.9, 0.9)], 1.0),
        transcript([("a", 0.0, 0.2, 0.9), ("frog", 0.3, 0.5, 0.9)], 1.0),
        transcript([("a", 0.0, 0.2, 0.9), ("dog", 0.3, 0.5, 0.9), ("sat", 0.6, 0.9, 0.9)], 1.0),
        transcript([], 1.0),
    ]
    report = score(utts, hyps)
    assert report.wer_by_speaker == {"12": pytest.approx(2 / 3), "7": 0.0}
    assert report.wer == pytest.approx(5 / 12)


def test_evaluate_tiny_model(tmp_path, caplog):
    rng = np.random.default_rng(0)
    t = np.arange(16_000) / 16_000
    utts = []
    for i in range(2):
        wave = 0.3 * np.sin(2 * math.pi * (200 + 100 * i) * t) * rng.random(len(t))
        sf.write(tmp_path / f"{i}.wav", wave.astype(np.float32), 16_000)
        words = (("hello", 0.1, 0.4), ("world", 0.5, 0.9)) if i == 0 else None
        utts.append(Utterance(str(i), str(tmp_path / f"{i}.wav"), "hello world", 1.0, words))
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really a wav file")
    utts.append(Utterance("bad", str(tmp_path / "bad.wav"), "broken", 1.0))

    model = VoxLM.from_config("voxlm-tiny")
    options = DecodingOptions(no_speech_check=False, max_tokens_per_second=10)
    report, transcripts = evaluate(model, utts, batch_size=2, options=options, progress=False)

    assert report.n_utterances == 2 and report.n_failed == 1
    assert "bad" in caplog.text
    assert transcripts[2] is None and all(isinstance(t, Transcript) for t in transcripts[:2])
    assert report.wer >= 0 and report.cer >= 0
    assert report.audio_seconds == pytest.approx(2.0)
    assert report.real_time_factor > 0
    assert sum(report.stop_reasons.values()) == 2
    assert report.baseline_onset_mae_ms is not None
    for name in ("onset_within_50ms", "onset_within_100ms"):
        value = getattr(report, name)
        assert value is None or 0 <= value <= 1
    assert report.to_dict()["n_failed"] == 1
