"""Spelling: a character CTC head on the encoder's states.

A pretrained LLM's vocabulary (SmolLM2: 49k tokens, Qwen: 151k) is too large for a CTC head
the prefix scorer can decode with (``voxlm.ctc.MAX_CTC_VOCAB``), yet a pretrained encoder's
states learn to spell cheaply: the LLM does not run while the head trains. With
``ModelConfig.ctc_units: characters`` the CTC head spells these 28 characters instead, and
``ctc_embeddings`` hands the LLM the embeddings of the letters it hears, so the LLM reads
the audio as it would read a (misspelt) text.
"""

from __future__ import annotations

import unicodedata

import numpy as np
import torch
from torch import nn

from voxlm.encoder import ENCODER_FRAME_SECONDS
from voxlm.text import normalize_text

ALPHABET = " abcdefghijklmnopqrstuvwxyz'"  # the head's outputs, then the CTC blank (last)
SPACE = ALPHABET.index(" ")
# How late the head's first letter of a word comes after the word's onset: the median lag of
# voxlm-smol's head on its synthetic dev split (exact onsets), 49 ms (BENCHMARKS.md, "Word
# times from the letters"). Taken off every word time that ``word_seconds`` reads.
ONSET_LAG_SECONDS = 0.05


def spell(text: str) -> list[int]:
    """A transcript as the head's targets: normalised, characters outside ALPHABET dropped
    (and the spaces they leave collapsed), then each character's index."""
    kept = " ".join("".join(c for c in normalize_text(text) if c in ALPHABET).split())
    return [ALPHABET.index(c) for c in kept]


def spell_piece(piece: str | None) -> tuple[int, ...]:
    """The characters a piece of an LLM's text adds, as ``spell`` would read them in a whole
    transcript: lowercased, whitespace and punctuation as spaces, anything else outside
    ALPHABET (digits, symbols) dropped. Spaces are kept as they come: where a word starts is
    for the caller to decide, since it depends on the text before. None (a special token) and
    "" add nothing."""
    units = []
    for c in (piece or "").lower():
        if c in ALPHABET:
            units.append(ALPHABET.index(c))
        elif c.isspace() or unicodedata.category(c).startswith("P"):
            units.append(SPACE)
    return tuple(units)


def read_spelling(ids: list[int]) -> str:
    """A greedy CTC path (frame-wise argmax, blank = len(ALPHABET)) -> its text."""
    blank = len(ALPHABET)
    chars = [ALPHABET[c] for k, c in enumerate(ids) if c != blank and (k == 0 or c != ids[k - 1])]
    return " ".join("".join(chars).split())


class SpellingHead(nn.Module):
    """Encoder states [B, T, D] -> character logits [B, T, len(ALPHABET) + 1], blank last.

    Two 1-D convolutions (5 frames each, 180 ms of context together) before the output layer:
    a linear head on frozen Whisper-base states spells far worse, since a letter's sound spans
    several 20 ms frames. ``dropout`` drops whole channels of the states while training: a
    head trained on a few synthetic voices otherwise leans on the channels that tell those
    voices apart, and real speech suffers (BENCHMARKS.md, "Listening without the LLM").
    """

    def __init__(self, dim: int, hidden: int = 384, dropout: float = 0.2) -> None:
        super().__init__()
        self.drop = nn.Dropout1d(dropout)
        self.norm = nn.LayerNorm(dim)
        self.conv = nn.Sequential(
            nn.Conv1d(dim, hidden, 5, padding=2),
            nn.GELU(),
            nn.Conv1d(hidden, hidden, 5, padding=2),
            nn.GELU(),
        )
        self.out = nn.Linear(hidden, len(ALPHABET) + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.drop(self.norm(x).transpose(1, 2))).transpose(1, 2)
        return self.out(x)


def letter_token_ids(tokenizer) -> list[int]:
    """The LLM token that spells each character of ALPHABET on its own, so ``ctc_embeddings``
    can hand the LLM its own letter embeddings. A space is the token a lone space encodes to
    (GPT-2-style "Ġ", SentencePiece "▁"); a tokenizer that puts that word-start marker before
    every text ("a" -> "▁", "a") has it dropped from the letters."""
    space = tokenizer(" ", add_special_tokens=False).input_ids
    ids = []
    for c in ALPHABET:
        tokens = tokenizer(c, add_special_tokens=False).input_ids
        if c != " " and len(tokens) == 2 and tokens[:1] == space:
            tokens = tokens[1:]
        if len(tokens) != 1:
            raise ValueError(
                f"model.ctc_units: characters needs one LLM token per character; "
                f"{c!r} encodes to {len(tokens)} tokens ({tokens})"
            )
        ids.append(tokens[0])
    return ids


def letter_frames(log_probs: np.ndarray, labels: list[int]) -> np.ndarray:
    """CTC forced alignment: the most likely path (Viterbi) of ``labels`` through a character
    head's log-probabilities [T, len(ALPHABET) + 1] (blank last) -> each label's frames on
    that path, [first, last + 1), as an int array [len(labels), 2]. Raises ValueError where
    the frames are too few to spell the labels."""
    blank = len(ALPHABET)
    states = np.full(2 * len(labels) + 1, blank)  # blank, l1, blank, l2, ..., blank
    states[1::2] = labels
    n_frames, n_states = len(log_probs), len(states)
    skip = np.zeros(n_states, dtype=bool)  # a letter may follow the letter before directly
    skip[3::2] = states[3::2] != states[1:-2:2]
    score = np.full(n_states, -np.inf)
    score[:2] = log_probs[0, states[:2]]
    back = np.zeros((n_frames, n_states), dtype=np.int8)  # states stepped back from
    for t in range(1, n_frames):
        moves = np.full((3, n_states), -np.inf)
        moves[0] = score
        moves[1, 1:] = score[:-1]
        moves[2, 2:] = np.where(skip[2:], score[:-2], -np.inf)
        back[t] = moves.argmax(0)
        score = moves.max(0) + log_probs[t, states]
    end = n_states - 1 if n_states == 1 or score[-1] >= score[-2] else n_states - 2
    if not np.isfinite(score[end]):
        raise ValueError(f"{n_frames} frames are too few to spell {len(labels)} letters")
    path = np.empty(n_frames, dtype=np.int64)
    for t in range(n_frames - 1, -1, -1):
        path[t] = end
        end -= int(back[t, end])
    frames = np.zeros((len(labels), 2), dtype=np.int64)
    for k in range(len(labels)):
        hit = np.flatnonzero(path == 2 * k + 1)
        frames[k] = hit[0], hit[-1] + 1
    return frames


def word_seconds(log_probs: np.ndarray, text: str) -> np.ndarray:
    """Each word of ``text`` (as ``spell`` reads it) timed by ``letter_frames``: from its first
    letter's first frame to its last letter's last, in seconds, ``ONSET_LAG_SECONDS`` earlier
    and not before 0 -> float array [n_words, 2]."""
    labels = spell(text)
    frames = letter_frames(log_probs, labels)
    starts = [k for k, c in enumerate(labels) if c != SPACE and (k == 0 or labels[k - 1] == SPACE)]
    ends = [
        k
        for k, c in enumerate(labels)
        if c != SPACE and (k + 1 == len(labels) or labels[k + 1] == SPACE)
    ]
    spans = np.stack([frames[starts, 0], frames[ends, 1]], axis=1) * ENCODER_FRAME_SECONDS
    return np.clip(spans - ONSET_LAG_SECONDS, 0.0, None).reshape(-1, 2)
