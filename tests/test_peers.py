"""voxlm.bench.peers: every comparison runs at toy size and reports a consistent row, and the
checks behind the ratios hold: VoxLM's log-mel equals WhisperFeatureExtractor's, its DTW paths
are openai-whisper's. Speed is reported, never asserted: the machine is shared."""

import math

import numpy as np
import pytest
import torch
from transformers import WhisperFeatureExtractor

from voxlm.bench import peers
from voxlm.bench.peers import MEL_TOLERANCE, alignment_cost, mel_difference, whisper_dtw_agrees
from voxlm.bench.peers_report import Target, noise, race


@pytest.fixture(scope="module")
def rows():
    return peers.run_peers(quick=True)


def test_every_comparison_reports_a_row(rows):
    assert [r.what.split(",")[0].split(" (")[0] for r in rows] == [
        "log-mel",
        "DTW",
        "encoder",
        "greedy decoding",
        "words + confidence",
        "batch of 4",
    ]
    for row in rows:
        assert row.baseline and row.target and row.note
        if row.met is None:  # not run: only the DTW row, without openai-whisper
            assert row.what.startswith("DTW") and math.isnan(row.ratio)
            continue
        assert row.voxlm_seconds > 0 and row.baseline_seconds > 0
        faster = row.target.endswith("faster")
        ratio = (
            (row.baseline_seconds / row.voxlm_seconds)
            if faster
            else (row.voxlm_seconds / row.baseline_seconds)
        )
        assert row.ratio == pytest.approx(ratio)
        bound = float(row.target.split()[1].rstrip("x"))
        assert row.met == (row.ratio >= bound if faster else row.ratio <= bound)
        assert set(row.to_dict()) == {
            "what", "baseline", "voxlm_seconds", "baseline_seconds", "ratio", "target", "met",
            "note",
        }  # fmt: skip


def test_the_rows_checked_what_they_compare(rows):
    mel, dtw_row = rows[0], rows[1]
    assert float(mel.note.split()[2]) <= MEL_TOLERANCE
    if dtw_row.met is not None:
        assert dtw_row.note == "identical paths"
    assert "16 tokens" in rows[3].what  # 2 s at 4 tokens/s, plus 8: the fixed work was done


@pytest.mark.parametrize("seconds", [0.05, 1.234, 7.0, 29.99])
def test_log_mel_equals_whisper_feature_extractor(seconds):
    audio = noise(3, seconds, seed=7)
    assert mel_difference(audio, WhisperFeatureExtractor(feature_size=80)) <= MEL_TOLERANCE


def test_a_log_mel_that_differs_fails_the_row(monkeypatch):
    shifted = peers.log_mel_spectrogram
    monkeypatch.setattr(peers, "log_mel_spectrogram", lambda *a, **k: shifted(*a, **k) + 1e-3)
    with pytest.raises(AssertionError, match="differs from WhisperFeatureExtractor"):
        peers.log_mel_row(clips=1, repeats=1, device="cpu")


@pytest.mark.parametrize("shape", [(1, 1), (1, 40), (40, 1), (30, 30), (60, 200), (200, 1500)])
def test_dtw_paths_are_whisper_s(shape):
    pytest.importorskip("whisper")
    assert whisper_dtw_agrees(alignment_cost(*shape, seed=shape[0]))


def test_dtw_ties_break_as_whisper_s():
    pytest.importorskip("whisper")
    rng = np.random.default_rng(0)
    for _ in range(20):  # small integers: every sum is exact, so ties are real ties
        assert whisper_dtw_agrees(rng.integers(0, 3, size=(8, 20)).astype(np.float64))
    assert whisper_dtw_agrees(np.zeros((5, 9)))


def test_targets_read_both_ways():
    faster = Target.speed_up(5.0).row("a", "b", voxlm_seconds=1.0, baseline_seconds=6.0, note="")
    assert (faster.ratio, faster.met, faster.target) == (6.0, True, ">= 5x faster")
    share = Target.time_share(0.4).row("a", "b", voxlm_seconds=1.0, baseline_seconds=2.0, note="")
    assert (share.ratio, share.met, share.target) == (0.5, False, "<= 0.4x the time")
    skipped = Target.speed_up(1.0).skipped("a", "b", "not installed")
    assert skipped.met is None and math.isnan(skipped.ratio) and skipped.note == "not installed"


def test_race_keeps_each_side_s_best_time_without_autograd():
    calls = []

    def side(name):
        calls.append((name, torch.is_grad_enabled()))

    voxlm_s, baseline_s = race(lambda: side("voxlm"), lambda: side("peer"), repeats=3)
    assert [name for name, _ in calls] == ["voxlm", "peer"] * 4  # a warm-up, then 3 turns
    assert not any(grad for _, grad in calls)
    assert 0 < voxlm_s < 1 and 0 < baseline_s < 1
