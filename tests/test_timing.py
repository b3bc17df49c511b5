"""DTW, median filter, token spans, tokens -> words, word confidence and n-best posteriors."""

import math

import numpy as np
import pytest
import torch

from voxlm.timing import (
    dtw,
    median_filter,
    token_spans,
    tokens_to_words,
    word_confidence,
    word_posteriors,
)


def all_paths(n: int, m: int):
    """Every monotonic path from (0, 0) to (n-1, m-1) with steps (1,1), (1,0), (0,1)."""

    def extend(path):
        i, j = path[-1]
        if (i, j) == (n - 1, m - 1):
            yield path
            return
        for di, dj in ((1, 1), (1, 0), (0, 1)):
            if i + di < n and j + dj < m:
                yield from extend(path + [(i + di, j + dj)])

    yield from extend([(0, 0)])


def path_cost(cost, rows, cols):
    return float(cost[np.asarray(rows), np.asarray(cols)].sum())


# --- DTW -------------------------------------------------------------------------------------


def test_dtw_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(40):
        n, m = rng.integers(1, 6), rng.integers(1, 7)
        cost = rng.random((n, m))
        rows, cols = dtw(cost)
        costs = sorted((path_cost(cost, *zip(*p, strict=True)), p) for p in all_paths(n, m))
        best_cost, best_path = costs[0]
        assert path_cost(cost, rows, cols) == pytest.approx(best_cost)
        if len(costs) == 1 or costs[1][0] - best_cost > 1e-9:
            assert list(zip(rows.tolist(), cols.tolist(), strict=True)) == best_path


def test_dtw_path_is_monotonic_and_complete():
    rng = np.random.default_rng(1)
    rows, cols = dtw(rng.random((7, 30)))
    assert (rows[0], cols[0]) == (0, 0) and (rows[-1], cols[-1]) == (6, 29)
    steps = set(zip(np.diff(rows).tolist(), np.diff(cols).tolist(), strict=True))
    assert steps <= {(1, 1), (1, 0), (0, 1)}


def test_dtw_diagonal():
    cost = 1.0 - np.eye(5)
    rows, cols = dtw(cost)
    assert rows.tolist() == cols.tolist() == list(range(5))


def test_dtw_block_diagonal():
    bounds = [(0, 3), (3, 4), (4, 9), (9, 12)]
    cost = np.ones((len(bounds), 12))
    for i, (a, b) in enumerate(bounds):
        cost[i, a:b] = 0.0
    rows, cols = dtw(cost)
    for i, (a, b) in enumerate(bounds):
        assert cols[rows == i].tolist() == list(range(a, b))


def test_dtw_ties_prefer_staying_on_the_token():
    # Equal costs: walking back from the end, a frame step wins unless another is strictly
    # cheaper (openai/whisper's rule), so the last token keeps the tied frames.
    rows, cols = dtw(np.zeros((2, 3)))
    assert rows.tolist() == [0, 1, 1, 1] and cols.tolist() == [0, 0, 1, 2]


def test_dtw_rejects_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        dtw(np.zeros((0, 3)))
    for bad in (np.inf, -np.inf, np.nan):  # anywhere, on the path or off it
        for at in ((0, 1), (2, 0)):
            cost = np.zeros((3, 4))
            cost[at] = bad
            with pytest.raises(ValueError, match="finite"):
                dtw(cost)


# --- median filter ---------------------------------------------------------------------------


def test_median_filter_matches_reference():
    rng = np.random.default_rng(2)
    x = rng.random((3, 11))
    out = median_filter(x, 5)
    padded = np.pad(x, ((0, 0), (2, 2)), mode="reflect")
    expected = np.array([[np.median(row[t : t + 5]) for t in range(11)] for row in padded])
    np.testing.assert_allclose(out, expected)
    np.testing.assert_array_equal(median_filter(x, 1), x)
    assert median_filter(np.array([3.0]), 3).tolist() == [3.0]


def test_median_filter_removes_spike():
    x = np.array([0.0, 0.0, 9.0, 0.0, 0.0])
    assert median_filter(x, 3).tolist() == [0.0] * 5


@pytest.mark.parametrize("width", [0, 2, -3])
def test_median_filter_rejects_width(width):
    with pytest.raises(ValueError, match="odd"):
        median_filter(np.zeros(5), width)


# --- token spans ------------------------------------------------------------------------------


def block_log_attn(bounds, n_frames, sharpness=8.0):
    logits = np.zeros((len(bounds), n_frames))
    for i, (a, b) in enumerate(bounds):
        logits[i, a:b] = sharpness
    return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


def test_token_spans_recover_blocks():
    bounds = [(0, 4), (4, 5), (5, 11), (11, 16)]
    log_attn = block_log_attn(bounds, 20)  # frames 16.. are padding
    spans = token_spans(log_attn, n_frames=16)
    assert spans.tolist() == [list(b) for b in bounds]


def check_span_invariants(spans, n_frames):
    assert (spans[:, 1] > spans[:, 0]).all()
    assert (np.diff(spans[:, 0]) >= 0).all() and (np.diff(spans[:, 1]) >= 0).all()
    assert spans[0, 0] == 0 and spans[-1, 1] == n_frames


@pytest.mark.parametrize("n_tokens,n_frames", [(6, 50), (1, 1), (9, 4), (3, 3)])
def test_token_spans_invariants(n_tokens, n_frames):
    rng = np.random.default_rng(n_tokens * 100 + n_frames)
    log_attn = torch.randn(n_tokens, n_frames + 5).log_softmax(-1).numpy()
    for width in (1, 3, 7):
        spans = token_spans(log_attn + rng.normal(size=log_attn.shape), n_frames, width)
        assert spans.shape == (n_tokens, 2)
        check_span_invariants(spans, n_frames)


def test_token_spans_empty_and_errors():
    assert token_spans(np.zeros((0, 10)), 10).shape == (0, 2)
    with pytest.raises(ValueError, match="n_frames"):
        token_spans(np.zeros((2, 10)), 11)
    with pytest.raises(ValueError, match="n_frames"):
        token_spans(np.zeros((2, 10)), 0)


# --- aligner and its training targets ---------------------------------------------------------


# --- tokens -> words --------------------------------------------------------------------------


def spans_for(n, step=0.1):
    return [(i * step, (i + 1) * step) for i in range(n)]


def check_words(words):
    for w in words:
        assert 0.0 <= w.confidence <= 1.0 and w.end >= w.start
    for a, b in zip(words, words[1:], strict=False):
        assert a.start <= b.start and a.end <= b.end


def test_bpe_pieces_attach_punctuation():
    pieces = [" Hello", ",", " wor", "ld", "."]
    words = tokens_to_words(pieces, [0.9, 0.2, 0.8, 0.6, 0.9], spans_for(5))
    assert [w.word for w in words] == ["Hello,", "world."]
    assert (words[0].start, words[0].end) == (0.0, 0.1)  # the comma does not extend the word
    assert words[1].start == pytest.approx(0.2) and words[1].end == pytest.approx(0.4)
    assert words[0].confidence == pytest.approx(0.9)  # the doubtful comma is not counted
    assert words[1].confidence == pytest.approx(math.sqrt(0.8 * 0.6))
    check_words(words)


def test_character_pieces_with_space_tokens():
    pieces = [" ", "t", "h", "e", " ", "c", "a", "t", " "]
    words = tokens_to_words(pieces, [0.5] + [0.9] * 8, spans_for(9))
    assert [w.word for w in words] == ["the", "cat"]
    assert words[0].start == pytest.approx(0.1)  # the space token's time is not the word's
    assert words[0].confidence == pytest.approx(math.exp((math.log(0.5) + 3 * math.log(0.9)) / 4))
    check_words(words)


def test_sentencepiece_marker_opening_quote_and_apostrophe():
    pieces = ["▁He", "▁said", ' "', "don", "'", "t", '."', "▁ok"]
    words = tokens_to_words(pieces, [1.0] * 8, spans_for(8))
    assert [w.word for w in words] == ["He", "said", '"don\'t."', "ok"]
    assert words[2].start == pytest.approx(0.3)  # starts at "don", not at the quote
    check_words(words)


def test_first_piece_without_space_and_empty():
    assert [w.word for w in tokens_to_words(["a", "b", " c"], [1.0] * 3, spans_for(3))] == [
        "ab",
        "c",
    ]
    assert tokens_to_words([], [], []) == []
    assert [w.word for w in tokens_to_words(["..."], [0.5], spans_for(1))] == ["..."]


def test_tokens_to_words_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="equal lengths"):
        tokens_to_words([" a"], [0.5, 0.5], spans_for(1))


def test_word_confidence_methods():
    probs = [0.9, 0.5, 1.0]
    assert word_confidence(probs) == pytest.approx(0.45 ** (1 / 3))
    assert word_confidence(probs, "mean") == pytest.approx(0.8)
    assert word_confidence(probs, "min") == pytest.approx(0.5)
    assert word_confidence([0.0]) == pytest.approx(0.0, abs=1e-9)
    for method in ("geometric", "mean", "min"):
        assert word_confidence(probs, method) <= word_confidence(probs, "mean") + 1e-12
    with pytest.raises(ValueError, match="geometric"):
        word_confidence(probs, "max")


def test_edge_silence_leaves_leading_and_trailing_silence_to_no_token():
    bounds = [(5, 9), (9, 14), (14, 17)]  # frames 0-4 and 17-19 are silence
    log_attn = block_log_attn(bounds, 20)
    assert token_spans(log_attn, 20)[0, 0] == 0  # a plain path starts at the first frame
    spans = token_spans(log_attn, 20, edge_silence=True)
    assert spans.tolist() == [list(b) for b in bounds]
    for n_tokens, n_frames in [(6, 50), (1, 3), (9, 4)]:  # the invariants still hold
        log_attn = torch.randn(n_tokens, n_frames).log_softmax(-1).numpy()
        spans = token_spans(log_attn, n_frames, edge_silence=True)
        assert (spans[:, 1] > spans[:, 0]).all() and spans[-1, 1] <= n_frames
        assert (np.diff(spans[:, 0]) >= 0).all() and (np.diff(spans[:, 1]) >= 0).all()


def test_a_word_the_n_best_list_doubts_loses_its_share():
    # scores are log weights: the first transcript has 3/4 of the mass
    alternatives = [("the red bus", math.log(3.0)), ("the bed bus", 0.0)]
    assert word_posteriors(["the", "red", "bus"], alternatives) == pytest.approx([1, 0.75, 1])
    assert word_posteriors(["The", "red,", "bus"], alternatives) == pytest.approx([1, 0.75, 1])
    assert word_posteriors(["the", "red", "bus"], []) == [1.0, 1.0, 1.0]
    dropped = word_posteriors(["the", "red", "bus"], [("the red bus", 0.0), ("the bus", 0.0)])
    assert dropped == pytest.approx([1, 0.5, 1])
