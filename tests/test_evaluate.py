import itertools
import json
import math

import numpy as np
import pytest
import soundfile as sf

from voxlm.data.manifest import Utterance
from voxlm.decoding import DecodingOptions, Transcript, Word
from voxlm.evaluate import (
    EvaluationOptions,
    align_words,
    char_error_rate,
    confidence_auroc,
    evaluate,
    normalize_text,
    proportional_onsets,
    score,
    word_correctness,
    word_error_rate,
)
from voxlm.metrics import (
    EditCounts,
    SegmentCounts,
    boundary_errors,
    edit_counts,
    segment_counts,
    share_within,
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


def test_boundary_errors_skip_misrecognised_words():
    ref = [("The", 0.10, 0.30), ("cat", 0.40, 0.70), ("sat.", 0.80, 1.10)]
    hyp = transcript([("the", 0.12, 0.28, 0.9), ("hat", 0.41, 0.7, 0.4), ("sat", 0.75, 1.2, 0.8)])
    errors = boundary_errors(ref, hyp)
    assert [e[0] for e in errors] == pytest.approx([0.02, -0.05])  # starts
    assert [e[1] for e in errors] == pytest.approx([-0.02, 0.10])  # ends
    assert word_correctness("The cat sat.", hyp) == [True, False, True]


def test_share_within():
    errors = [0.01, -0.02, 0.05, -0.07, 0.2]  # seconds
    assert share_within(errors, 20) == pytest.approx(2 / 5)  # 20 ms exactly is within
    assert share_within(errors, 50) == pytest.approx(3 / 5)
    assert share_within(errors, 100) == pytest.approx(4 / 5)
    assert share_within([], 50) is None


def test_segment_counts_at_a_collar():
    ref = [("the", 0.0, 0.2), ("cat", 0.3, 0.5), ("sat", 0.6, 0.9)]
    hyp = transcript(
        [
            ("The", 0.03, 0.25, 0.9),  # start 30 ms late, end 50 ms late: inside the collar
            ("cat", 0.36, 0.5, 0.9),  # start 60 ms late: outside
            ("mat", 0.6, 0.9, 0.9),  # in time, wrong word
            (",", 0.9, 0.9, 0.9),  # punctuation is no word
        ]
    )
    counts = segment_counts(ref, hyp, collar=0.05)
    assert counts == SegmentCounts(true_positives=1, n_ref=3, n_hyp=3)
    assert counts.precision == pytest.approx(1 / 3) and counts.recall == pytest.approx(1 / 3)
    assert counts.f1 == pytest.approx(1 / 3)
    assert segment_counts(ref, hyp, collar=0.07).true_positives == 2
    assert SegmentCounts(0, 0, 0).f1 is None and SegmentCounts(0, 2, 0).precision is None


def test_segment_counts_pair_each_word_once_and_as_many_as_possible():
    ref = [("the", 0.0, 0.1), ("the", 0.06, 0.16)]
    # Two hypothesis words near the first reference word: only one may pair with it.
    near_first = transcript([("the", 0.0, 0.1, 0.9), ("the", 0.01, 0.1, 0.9)])
    assert segment_counts(ref[:1], near_first) == SegmentCounts(1, 1, 2)
    # The first hypothesis word fits both reference words, the second only the first: pairing
    # the first word with the first reference word (first come) would leave the second unpaired.
    crossing = transcript([("the", 0.03, 0.13, 0.9), ("the", 0.0, 0.09, 0.9)])
    assert segment_counts(ref, crossing).true_positives == 2


def test_edit_counts_by_hand():
    # "a b c d" -> "a x c d e": b substituted by x, e inserted.
    assert edit_counts(["a b c d"], ["a x c d e"]) == EditCounts(3, 1, 0, 1)
    assert edit_counts(["a b c"], ["a c"]) == EditCounts(2, 0, 1, 0)
    total = edit_counts(["a b c d", "a b c"], ["a x c d e", "a c"])
    assert total == EditCounts(3, 1, 0, 1) + EditCounts(2, 0, 1, 0)
    assert total.n_ref == 7 and total.errors == 3 and total.rate == pytest.approx(3 / 7)
    assert edit_counts(["ab"], ["abc"], unit="char") == EditCounts(2, 0, 0, 1)
    with pytest.raises(ValueError, match="unit"):
        edit_counts(["a"], ["a"], unit="phone")
    with pytest.raises(ValueError, match="normalizer"):
        edit_counts(["a"], ["a"], normalizer="french")


def test_numbers_count_as_words_with_the_english_normaliser():
    ref, hyp = ["I have 42 apples, 2nd try."], ["i have forty two apples second try"]
    assert word_error_rate(ref, hyp) == 0.0  # english is the default
    # plain: "42" -> "forty" (substitution) + "two" (insertion), "2nd" -> "second"
    assert edit_counts(ref, hyp, normalizer="plain") == EditCounts(4, 2, 0, 1)
    assert word_error_rate(ref, hyp, normalizer="plain") == pytest.approx(3 / 6)


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
    assert report.wer == pytest.approx(1 / 5) and report.normalizer == "english"
    assert report.n_timed_words == 2
    assert report.onset_mae_ms == pytest.approx(20.0)  # starts 10 and 30 ms late
    assert report.onset_median_ms == pytest.approx(20.0)
    assert report.onset_bias_ms == pytest.approx(20.0)
    assert report.onset_within_20ms == 0.5 and report.onset_within_50ms == 1.0
    assert report.offset_mae_ms == pytest.approx(0.0) and report.offset_within_20ms == 1.0
    # "the" and "cat" within 50 ms at both ends, "mat" is no reference word: 2 of 3 each way
    assert report.segment_f1 == pytest.approx(2 / 3) and report.segment_collar_ms == 50.0
    assert report.confidence_auroc == 1.0  # the only wrong word has the lowest confidence
    assert report.mean_confidence_wrong == pytest.approx(0.3)
    # one word per bin: ECE is the mean |right - confidence|, Brier its mean square
    gaps = [0.1, 0.2, 0.3, 0.3, 0.05]  # the, cat, mat (wrong), a, dog
    assert report.confidence_ece == pytest.approx(np.mean(gaps))
    assert report.confidence_brier == pytest.approx(np.mean(np.square(gaps)))
    assert len(report.reliability) == 5 and report.n_scored_words == 5
    assert report.real_time_factor == pytest.approx(0.25) and report.rtfx == pytest.approx(4.0)
    assert report.stop_reasons == {"eos": 2}
    # baseline on "the cat sat" over 1 s: onsets 0, 1/3, 2/3 against 0, 0.3, 0.6
    assert report.baseline_onset_mae_ms == pytest.approx((0 + 100 / 3 + 200 / 3) / 3)
    assert report.wer_by_speaker == {}  # no utterance names its speaker
    [worst] = report.worst_utterances  # "b" has no error, so is not listed
    assert (worst.id, worst.reference, worst.hypothesis) == ("a", "the cat sat", "the cat mat")
    assert worst.wer == pytest.approx(1 / 3) and worst.errors == 1
    assert json.loads(json.dumps(report.to_dict())) == report.to_dict()  # plain JSON types


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
    assert [u.id for u in report.worst_utterances] == ["4", "2"]  # WER 1, then 2/3
    assert score(utts, hyps, options=EvaluationOptions(worst=1)).worst_utterances[0].id == "4"


def test_evaluation_options_are_checked():
    with pytest.raises(ValueError, match="normalizer"):
        EvaluationOptions(normalizer="whisper")
    with pytest.raises(ValueError, match="nonspeech_seconds"):
        EvaluationOptions(nonspeech_seconds=-1)


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
    evaluation = EvaluationOptions(nonspeech_seconds=1.0)
    report, transcripts = evaluate(
        model, utts, batch_size=2, options=options, progress=False, evaluation=evaluation
    )

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
    assert [n.kind for n in report.nonspeech] == ["silence", "hum", "white", "pink", "music"]
    for n in report.nonspeech:  # no speech check: whatever the random model writes is counted
        assert n.seconds == 1.0 and n.words_per_minute == pytest.approx(60.0 * n.n_words)
    assert report.peak_rss_mb > 0 and report.cuda_peak_mb is None  # on the CPU
    assert report.rtfx == pytest.approx(1 / report.real_time_factor)
