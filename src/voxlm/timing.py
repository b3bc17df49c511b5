"""Word timing and confidence: aligner attention -> DTW -> token spans -> timed, scored words.

The aligner's log-attention of transcript tokens over 20 ms encoder frames is smoothed with a
median filter and a dynamic-time-warping path gives each token a monotonic span of frames, as
openai/whisper's ``timing.py`` does over cross-attention heads. Tokens are then merged into
words (``voxlm.text`` says what a word is); a word's time comes from its lexical tokens and its
confidence from its tokens' probabilities, weighed by how much of the n-best list agrees.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from voxlm.decoding.options import CONFIDENCE_METHODS
from voxlm.results import Word
from voxlm.text import group_words, is_lexical, is_punctuation, matched_words, normalize_word

# Probabilities are clipped to this floor before the log so a zero never gives -inf.
_MIN_PROB = 1e-12


@numba.jit(nopython=True)
def _dtw_path(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """The minimum-cost path through ``x`` (N, M): (rows, cols) in order, and whether every
    cost was finite (checked in the same pass: a separate check cost 9% of the time).

    Cell (i, j) of the (N+1, M+1) accumulated-cost table stands for x[i-1, j-1]. Steps: 0
    diagonal, 1 from the row above (next token, same frame), 2 from the left (same token, next
    frame). Ties go to the horizontal step unless one move is strictly cheapest, as in
    openai/whisper's dtw_cpu. The table is filled row by row, keeping only the row above, so
    ``x`` is read in memory order and the working set stays in cache: the same sums and the
    same choices as whisper's column-by-column fill of the whole table, with the backtrace
    compiled too (BENCHMARKS.md, peers).
    """
    n, m = x.shape
    step = np.empty((n, m), dtype=np.int8)  # the move into cell (i + 1, j + 1)
    above = np.full(m + 1, np.inf)  # row i - 1 of the table; row 0 is (0, inf, inf, ...)
    above[0] = 0.0
    row = np.empty(m + 1)
    finite = True
    for i in range(1, n + 1):
        row[0] = np.inf
        for j in range(1, m + 1):
            diag, up, left = above[j - 1], above[j], row[j - 1]
            if diag < up and diag < left:
                best, move = diag, 0
            elif up < diag and up < left:
                best, move = up, 1
            else:
                best, move = left, 2
            cost = x[i - 1, j - 1]
            finite &= cost - cost == 0.0  # False for inf and nan
            row[j] = cost + best
            step[i - 1, j - 1] = move
        above, row = row, above
    rows = np.empty(n + m, dtype=np.int64)
    cols = np.empty(n + m, dtype=np.int64)
    i, j, k = n, m, 0
    while i > 0 and j > 0:
        rows[k], cols[k] = i - 1, j - 1
        k += 1
        move = step[i - 1, j - 1]
        if move == 0:
            i, j = i - 1, j - 1
        elif move == 1:
            i -= 1
        else:
            j -= 1
    return rows[:k][::-1].copy(), cols[:k][::-1].copy(), finite


def dtw(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost monotonic path through ``cost`` (N, M) from (0, 0) to (N-1, M-1).

    Steps are (1, 1), (1, 0) and (0, 1). Returns (text indices, frame indices), each of the
    path's length, in order.
    """
    if cost.ndim != 2 or 0 in cost.shape:
        raise ValueError(f"dtw expects a non-empty 2-D cost matrix, got shape {cost.shape}")
    rows, cols, finite = _dtw_path(np.ascontiguousarray(cost, dtype=np.float64))
    if not finite:
        raise ValueError("dtw expects a finite cost matrix (clip -log(0) before calling)")
    return rows, cols


def median_filter(x: np.ndarray, width: int) -> np.ndarray:
    """Median over a window of odd ``width`` along the last axis, with reflect padding.

    An axis no longer than ``width // 2`` cannot be reflected and is returned unchanged.
    """
    if width < 1 or width % 2 == 0:
        raise ValueError(f"median filter width must be a positive odd number, got {width}")
    pad = width // 2
    if width == 1 or x.shape[-1] <= pad:
        return x.copy()
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)], mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=-1)  # (..., n, width)
    return np.median(windows, axis=-1)


def token_spans(
    log_attn: np.ndarray,
    n_frames: int,
    median_width: int = 3,
    edge_silence: bool = False,
) -> np.ndarray:
    """Frame span [start, end) of each token from its log attention (L, T) -> (L, 2) int.

    Only the first ``n_frames`` (valid) frames are used. The cost -log_attn is median-smoothed
    over frames (``median_width`` 1 turns this off) to remove one-frame spikes, then DTW gives a
    monotonic path. Each token spans the frames its path covers: at least one frame, and starts
    and ends never decrease. With more tokens than frames the path must step down within a
    frame, so neighbouring tokens then share a frame.

    A plain DTW path runs from the first frame to the last, so the first word would start at
    0 s whatever silence precedes it (on the demo's test set: every first word 150 ms early).
    With ``edge_silence`` the path may give the frames before the first token and after the
    last to silence, at the cost of uniform attention, -log(1 / n_frames), per frame: the
    frames the edge tokens attend to less than uniformly go to silence.
    """
    if log_attn.ndim != 2:
        raise ValueError(f"log_attn must be (tokens, frames), got shape {log_attn.shape}")
    if not 1 <= n_frames <= log_attn.shape[1]:
        raise ValueError(f"n_frames must be in [1, {log_attn.shape[1]}], got {n_frames}")
    n_tokens = log_attn.shape[0]
    spans = np.zeros((n_tokens, 2), dtype=np.int64)
    if n_tokens == 0:
        return spans
    cost = median_filter(-np.asarray(log_attn[:, :n_frames], dtype=np.float64), median_width)
    edge = 0
    if edge_silence and n_frames > 2:
        silence = np.full((1, n_frames), math.log(n_frames))
        cost, edge = np.concatenate([silence, cost, silence]), 1
    rows, cols = dtw(cost)
    # rows is sorted and covers every row, so each token's frames are one contiguous run.
    tokens = np.arange(n_tokens) + edge
    first = np.searchsorted(rows, tokens, side="left")
    last = np.searchsorted(rows, tokens, side="right") - 1
    spans[:, 0] = cols[first]
    spans[:, 1] = cols[last] + 1
    return spans


def word_confidence(probs: list[float], method: str = "geometric") -> float:
    """One number in [0, 1] for a word from its tokens' probabilities.

    - "geometric": exp(mean log p), the per-token-normalised probability of the whole word. It
      is what the decoder itself scored and does not punish long words for their length.
    - "mean": arithmetic mean. Lenient: one very unsure token among sure ones barely moves it.
    - "min": the least sure token. Strict, suits character tokenizers where any one wrong
      character makes the word wrong, but it ignores how sure the rest of the word is.
    """
    if method not in CONFIDENCE_METHODS:
        raise ValueError(
            f"confidence method {method!r} unknown; expected one of {CONFIDENCE_METHODS}"
        )
    if len(probs) == 0:
        raise ValueError("word_confidence needs at least one token probability")
    p = np.clip(np.asarray(probs, dtype=np.float64), _MIN_PROB, 1.0)
    if method == "geometric":
        return float(np.exp(np.log(p).mean()))
    if method == "mean":
        return float(p.mean())
    return float(p.min())


def word_posteriors(words: list[str], alternatives: list[tuple[str, float]]) -> list[float]:
    """Each word's share of the n-best list: the softmax (over the scores) weight of the
    transcripts (text, log score) in which the minimum-edit alignment pairs it with the same
    word. A word the beam never doubted gets 1; one that half the probability mass spells
    otherwise gets 0.5. Words that normalise to nothing (punctuation) get 1.
    """
    if not alternatives:
        return [1.0] * len(words)
    top = max(score for _, score in alternatives)
    weights = [math.exp(score - top) for _, score in alternatives]
    total = sum(weights)
    posterior = [0.0 if normalize_word(w) else 1.0 for w in words]
    for (text, _), weight in zip(alternatives, weights, strict=True):
        for i, _ in matched_words(words, text.split()):
            posterior[i] += weight / total
    return [min(p, 1.0) for p in posterior]


def tokens_to_words(
    pieces: list[str],
    probs: list[float],
    spans_seconds: list[tuple[float, float]],
    confidence: str = "geometric",
) -> list[Word]:
    """Merge generated tokens into words with times and confidence.

    ``pieces[i]`` is the text of token i ("▁" counts as a space). A piece starting with
    whitespace starts a new word, as does the first piece. Pure punctuation joins the word
    before it, except opening marks after a space, which join the word after. Pure whitespace
    pieces (a lone space token of a character tokenizer) join the word after them.

    Times come from the word's lexical tokens only: a space or punctuation token carries no
    sound of the word, and DTW tends to give it the pause around the word, so counting it would
    stretch the word. Confidence (``word_confidence``) is over the word's tokens except
    punctuation, since a doubtful comma says nothing about the word itself; a lone space token
    counts, as it is the decoder's decision that a word starts here. A word made only of
    punctuation falls back to all its tokens.
    """
    if not len(pieces) == len(probs) == len(spans_seconds):
        raise ValueError(
            f"pieces, probs and spans_seconds must have equal lengths, got {len(pieces)}, "
            f"{len(probs)} and {len(spans_seconds)}"
        )
    pieces = [piece.replace("▁", " ") for piece in pieces]
    words = []
    for group in group_words(pieces):
        text = "".join(pieces[i] for i in group).strip()
        if not text:
            continue  # only whitespace, e.g. a trailing space token
        timed = timing_tokens(group, pieces)
        scored = [i for i in group if not is_punctuation(pieces[i].strip())] or group
        start = float(spans_seconds[timed[0]][0])
        end = max(float(spans_seconds[timed[-1]][1]), start)
        conf = word_confidence([probs[i] for i in scored], confidence)
        words.append(Word(word=text, start=start, end=end, confidence=conf))
    return words


def timing_tokens(tokens: list[int], pieces: list[str]) -> list[int]:
    """The tokens of one word that give its time: its lexical ones, else any with text, else
    all. A space or punctuation token carries no sound of the word, and DTW tends to give it
    the pause around the word, so counting it would stretch the word."""
    return (
        [i for i in tokens if is_lexical(pieces[i])]
        or [i for i in tokens if pieces[i].strip()]
        or tokens
    )
