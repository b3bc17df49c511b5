"""Training labels built from word timings: the aligner's target attention and span-CTC spans.

Both need to know which word each transcript token is in (``voxlm.text``) and which 20 ms
encoder frames a word covers. They are plain functions of the batch, outside the model, so the
model only runs the network and the losses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from voxlm.encoder import ENCODER_FRAME_SECONDS
from voxlm.results import WordTiming
from voxlm.text import TokenText, piece_word_index

BOUNDARY_FRAMES = 2  # a whitespace token's aligner target: this many frames before the onset

TimedWords = Sequence[WordTiming] | None  # one utterance's timed words, or None


def token_word_index(pieces: Sequence[str], words: TimedWords) -> list[int]:
    """Index of the timed word each token is in (``text.piece_word_index``), or -1 for every
    token when the timed words do not match the text's words."""
    index, n_words = piece_word_index(pieces)
    if words is None or len(words) != n_words:
        return [-1] * len(pieces)
    return index


def word_frames(word: WordTiming) -> tuple[int, int]:
    """A timed word's encoder frames [start, end)."""
    return int(word.start / ENCODER_FRAME_SECONDS), math.ceil(word.end / ENCODER_FRAME_SECONDS)


def alignment_targets(
    token_text: TokenText,
    tokens: Sequence[Sequence[int]],
    words: Sequence[TimedWords],
    n_frames: int,
    valid_frames: list[int],
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """The aligner's target attention [B, X, T] over 20 ms frames, which tokens [B, X] have
    one, and each row's number of tokens (``tokens``: each row's transcript, without EOS).

    Each token of a word attends uniformly over the word's frames. A token of whitespace
    alone (a character tokenizer's space) attends to the BOUNDARY_FRAMES frames just before
    its word's onset instead: aimed at the whole word, it takes the word's first frames from
    the first letter, and onsets come out late.
    """
    token_words, frames_of_words = [], []
    for ids, utterance_words in zip(tokens, words, strict=True):
        pieces = token_text.pieces(list(ids))
        index = token_word_index(pieces, utterance_words)
        frames = [word_frames(w) for w in (utterance_words or [])]
        for j, piece in enumerate(pieces):
            if piece and not piece.strip() and index[j] >= 0:
                onset = frames[index[j]][0]
                frames.append((max(onset - BOUNDARY_FRAMES, 0), max(onset, 1)))
                index[j] = len(frames) - 1
        token_words.append(index)
        frames_of_words.append(frames)
    target, token_mask = span_targets(token_words, frames_of_words, n_frames, valid_frames)
    return target, token_mask, [len(t) for t in token_words]


def span_ctc_spans(
    token_text: TokenText,
    tokens: Sequence[Sequence[int]],
    words: Sequence[TimedWords],
    valid_frames: list[int],
) -> list[tuple[int, int, int, list[int]]]:
    """(row, start frame, end frame, the word's tokens) of every timed word of a batch, for
    ``ctc.span_ctc_loss`` (``tokens``: each row's transcript, without EOS).

    A word's span starts BOUNDARY_FRAMES before its onset, where the space token before it
    is aimed, as in the aligner's targets, and ends as many frames after its end (slack for
    a timing a frame off). Utterances whose timed words do not match their text, and words
    too short for their tokens, are left out.
    """
    spans = []
    for row, (ids, timed) in enumerate(zip(tokens, words, strict=True)):
        if not timed:
            continue
        index = token_word_index(token_text.pieces(list(ids)), timed)
        for j, word in enumerate(timed):
            word_tokens = [t for t, w in zip(ids, index, strict=True) if w == j]
            start, end = word_frames(word)
            start = max(start - BOUNDARY_FRAMES, 0)
            end = min(end + BOUNDARY_FRAMES, valid_frames[row])
            if word_tokens and end - start >= len(word_tokens):
                spans.append((row, start, end, word_tokens))
    return spans


def span_targets(
    token_word_index: list[list[int]],
    word_frames: list[list[tuple[int, int]]],
    n_frames: int,
    valid_frames: list[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training targets for the aligner: each token attends uniformly over its word's frames.

    ``token_word_index[b][j]`` is the index into ``word_frames[b]`` of the word that token ``j``
    belongs to, or -1 for tokens in no word (EOS, a lone space); those are masked out.
    Word frames ``[start, end)`` are clipped to ``n_frames`` (or to ``valid_frames[b]`` when
    given, so a word ending on the last, partly covered frame never targets a masked frame) and
    keep at least one frame. Returns ``target`` (B, L, T=n_frames) float32 and ``token_mask``
    (B, L) bool, with L the most tokens in the batch.
    """
    if len(token_word_index) != len(word_frames):
        raise ValueError(
            f"token_word_index has {len(token_word_index)} utterances but word_frames has "
            f"{len(word_frames)}; expected one entry per utterance in both"
        )
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    batch = len(token_word_index)
    if valid_frames is not None and len(valid_frames) != batch:
        raise ValueError(f"valid_frames has {len(valid_frames)} entries, expected {batch}")
    n_tokens = max((len(ids) for ids in token_word_index), default=0)
    target = torch.zeros(batch, n_tokens, n_frames)  # (B, L, T)
    token_mask = torch.zeros(batch, n_tokens, dtype=torch.bool)  # (B, L)
    for b, (word_ids, frames) in enumerate(zip(token_word_index, word_frames, strict=True)):
        limit = n_frames if valid_frames is None else max(1, min(valid_frames[b], n_frames))
        for j, w in enumerate(word_ids):
            if w < 0:
                continue
            if w >= len(frames):
                raise ValueError(
                    f"utterance {b}, token {j}: word index {w} but only {len(frames)} words"
                )
            start = min(max(int(frames[w][0]), 0), limit - 1)
            end = min(max(int(frames[w][1]), start + 1), limit)
            target[b, j, start:end] = 1.0 / (end - start)
            token_mask[b, j] = True
    return target, token_mask
