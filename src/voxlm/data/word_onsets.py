"""Word timings of synthetic speech: onsets from espeak-ng's events, spans trimmed to voice.

Word events carry `sample`, an index at espeak-ng's 22,050 Hz. About 5% of utterances lack an
event for an unstressed "the"/"a" (measured: "in the", "on the" are spoken as one word, and the
article's phonemes are reported under the preceding word). Such an onset is recovered from the
phoneme events: the article's phonemes are the last ones of the preceding word
(`_MERGED_WORDS`). Any other mismatch returns None, and the caller synthesises again or drops
the utterance, never misaligns it.

A word's span is then trimmed to voiced energy: its start moves forward over silence after the
onset, its end back to the last voiced frame before the next onset.
"""

from __future__ import annotations

import re

import numpy as np

from voxlm.audio import SAMPLE_RATE

FRAME = SAMPLE_RATE // 100  # 10 ms energy frames, 160 samples

# Words espeak-ng merges into the preceding word: (first phoneme names, phoneme count).
_MERGED_WORDS = {"the": (("D", "d"), 2), "a": (("",), 1), "an": (("",), 2)}


def _merged_onset(word: str, phonemes: list[tuple[int, str]]) -> int | None:
    """Onset of an article spoken as the tail of the previous word's phonemes, if it fits."""
    if word not in _MERGED_WORDS:
        return None
    firsts, count = _MERGED_WORDS[word]
    spoken = [(sample, name) for sample, name in phonemes if name[:1] not in ("_", ";")]
    if len(spoken) <= count or not spoken[-count][1].startswith(firsts):
        return None
    return spoken[-count][0]


def match_events(
    text: str, events: list[tuple[int, int]], phonemes: list[tuple[int, int, str]]
) -> list[int] | None:
    """Onset sample of each word, or None unless every word is accounted for exactly once."""
    starts = [m.start() for m in re.finditer(r"\S+", text)]
    onsets: dict[int, int] = {}
    for position, sample in events:
        if position not in starts or position in onsets:
            return None
        onsets[position] = sample
    for i, start in enumerate(starts):
        if start not in onsets and i > 0 and starts[i - 1] in onsets:
            previous = [(s, name) for p, s, name in phonemes if p == starts[i - 1]]
            onset = _merged_onset(text.split()[i], previous)
            if onset is not None:
                onsets[start] = onset
    if len(onsets) != len(starts):
        return None
    samples = [onsets[s] for s in starts]
    return samples if samples == sorted(samples) else None


def voiced_frames(audio: np.ndarray, voiced_db: float) -> np.ndarray:
    """Bool [frames]: 10 ms frames whose energy is within `voiced_db` of the loudest one."""
    n = len(audio) // FRAME
    energy = (audio[: n * FRAME].reshape(n, FRAME) ** 2).mean(axis=1)  # [frames]
    db = 10 * np.log10(energy + 1e-12)
    return db > db.max() - voiced_db


def word_spans(onsets: np.ndarray, n_samples: int, voiced: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) samples per word from onsets, trimmed to the voiced frames between them."""
    bounds = np.append(onsets, n_samples)
    spans = []
    for begin, limit in zip(bounds[:-1], bounds[1:], strict=True):
        frames = np.flatnonzero(voiced[begin // FRAME : max(begin // FRAME + 1, limit // FRAME)])
        if len(frames) == 0:
            spans.append((int(begin), int(max(begin, limit))))
            continue
        first = begin // FRAME + frames[0]
        last = begin // FRAME + frames[-1]
        start = max(int(begin), int(first) * FRAME)
        end = min(int(limit), (int(last) + 1) * FRAME)
        spans.append((start, max(start, end)))
    return spans
