"""The metric functions: error rates, word boundary errors, word-segment F1, confidence AUROC.

Pure functions of references and transcripts, with no model: ``voxlm.evaluate`` runs a model and
puts them in a report, and training, calibration and benchmarks call them directly. Text metrics
compare normalised text, applied the same way to references and hypotheses, so a capital letter,
a comma or "42" against "forty two" is never counted as a recognition error (``NORMALIZERS``:
``english``, the default, spells numbers out; ``plain`` does not). Word-level metrics (timing,
confidence) match single words with ``normalize_word``, which leaves numbers as written, because
a word's time cannot be split among the words its number is spelled with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jiwer
import numpy as np

from voxlm.results import Transcript, WordTiming
from voxlm.text import matched_words, normalize_english, normalize_text, normalize_word

NORMALIZERS: dict[str, Callable[[str], str]] = {
    "english": normalize_english,  # whisper-style: case, punctuation, numbers in words
    "plain": normalize_text,  # case and punctuation only: for languages other than English
}


# ---- text ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EditCounts:
    """The minimum-edit alignment's counts; corpus counts are sums of utterance counts."""

    hits: int
    substitutions: int
    deletions: int
    insertions: int

    @property
    def n_ref(self) -> int:
        return self.hits + self.substitutions + self.deletions

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """errors / reference units; with no reference units, 0.0 if nothing was inserted, else
        1.0 (every unit is an insertion)."""
        return self.errors / self.n_ref if self.n_ref else float(self.errors > 0)

    def __add__(self, other: EditCounts) -> EditCounts:
        return EditCounts(
            self.hits + other.hits,
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
        )


def edit_counts(
    refs: Sequence[str], hyps: Sequence[str], unit: str = "word", normalizer: str = "english"
) -> EditCounts:
    """Alignment counts of normalised texts, over ``unit`` "word" or "char" (spaces count).

    jiwer aligns each pair on its own (minimum edit distance) and sums the counts, so the counts
    of a corpus are the sums of its utterances' counts.
    """
    if isinstance(refs, str) or isinstance(hyps, str):
        raise ValueError("refs and hyps must be lists of transcripts, not single strings")
    if len(refs) != len(hyps):
        raise ValueError(f"got {len(refs)} references but {len(hyps)} hypotheses; expected equal")
    if normalizer not in NORMALIZERS:
        raise ValueError(f"normalizer must be one of {sorted(NORMALIZERS)}, got {normalizer!r}")
    norm = NORMALIZERS[normalizer]
    if unit not in ("word", "char"):
        raise ValueError(f'unit must be "word" or "char", got {unit!r}')
    process = jiwer.process_words if unit == "word" else jiwer.process_characters
    out = process([norm(r) for r in refs], [norm(h) for h in hyps])
    return EditCounts(out.hits, out.substitutions, out.deletions, out.insertions)


def word_error_rate(refs: Sequence[str], hyps: Sequence[str], normalizer: str = "english") -> float:
    """Corpus WER: substitutions + deletions + insertions over all utterances / reference words."""
    return edit_counts(refs, hyps, "word", normalizer).rate


def char_error_rate(refs: Sequence[str], hyps: Sequence[str], normalizer: str = "english") -> float:
    """Corpus CER over normalised texts: character edits / reference characters (spaces count)."""
    return edit_counts(refs, hyps, "char", normalizer).rate


# ---- word timing --------------------------------------------------------------------------------
def boundary_errors(ref_timed: Sequence[WordTiming], hyp: Transcript) -> list[tuple[float, float]]:
    """Signed (start, end) errors, hypothesis - reference in seconds, of correctly recognised
    words.

    A word counts when the alignment of the normalised words matches it to a reference word;
    substituted, inserted and deleted words have no counterpart and are left out.
    """
    pairs = matched_words([w[0] for w in ref_timed], [w.word for w in hyp.words])
    return [
        (hyp.words[j].start - ref_timed[i][1], hyp.words[j].end - ref_timed[i][2]) for i, j in pairs
    ]


def share_within(errors: Sequence[float], tolerance_ms: float) -> float | None:
    """The share of errors (seconds) whose size is at most ``tolerance_ms``; None for none."""
    if not len(errors):
        return None
    size_ms = np.abs(np.asarray(errors, dtype=np.float64)) * 1000.0
    return float((size_ms <= tolerance_ms + 1e-9).mean())  # 1e-9: 0.05 s is within 50 ms


@dataclass(frozen=True)
class SegmentCounts:
    """Word segments matched within a collar: CrisperWhisper's precision, recall and F1."""

    true_positives: int
    n_ref: int
    n_hyp: int

    @property
    def precision(self) -> float | None:
        return self.true_positives / self.n_hyp if self.n_hyp else None

    @property
    def recall(self) -> float | None:
        return self.true_positives / self.n_ref if self.n_ref else None

    @property
    def f1(self) -> float | None:
        total = self.n_ref + self.n_hyp
        return 2 * self.true_positives / total if total else None

    def __add__(self, other: SegmentCounts) -> SegmentCounts:
        return SegmentCounts(
            self.true_positives + other.true_positives,
            self.n_ref + other.n_ref,
            self.n_hyp + other.n_hyp,
        )


def segment_counts(
    ref_timed: Sequence[WordTiming], hyp: Transcript, collar: float = 0.05
) -> SegmentCounts:
    """True positives of hypothesis words against timed reference words (CrisperWhisper's F1).

    A hypothesis word may pair with a reference word of the same normalised text whose start and
    end are both within ``collar`` seconds of its own; each word pairs at most once, and the
    pairing is a maximum matching (augmenting paths), so repeated words ("the the") cannot steal
    each other's partner. Words that normalise to nothing (punctuation) are not counted.
    """
    ref = [(normalize_word(w[0]), w[1], w[2]) for w in ref_timed]
    ref = [r for r in ref if r[0]]
    hyp = [(normalize_word(w.word), w.start, w.end) for w in hyp.words]
    hyp = [h for h in hyp if h[0]]
    tolerance = collar + 1e-9  # a boundary exactly one collar away is inside it
    candidates = [
        [
            i
            for i, (word, start, end) in enumerate(ref)
            if word == h_word
            and abs(h_start - start) <= tolerance
            and abs(h_end - end) <= tolerance
        ]
        for h_word, h_start, h_end in hyp
    ]
    partner: dict[int, int] = {}  # reference index -> hypothesis index

    def augment(j: int, seen: set[int]) -> bool:
        for i in candidates[j]:
            if i not in seen:
                seen.add(i)
                if i not in partner or augment(partner[i], seen):
                    partner[i] = j
                    return True
        return False

    matched = sum(augment(j, set()) for j in range(len(hyp)))
    return SegmentCounts(matched, len(ref), len(hyp))


def proportional_onsets(text: str, duration: float) -> list[float]:
    """The naive timing baseline: the duration split among the words by their length in chars.

    Word i starts at duration * (characters of words before it) / (characters of all words).
    A model's timing is worth having only as far as it beats this.
    """
    lengths = np.array([len(w) for w in text.split()], dtype=np.float64)
    if len(lengths) == 0:
        return []
    before = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
    return (duration * before / lengths.sum()).tolist()


# ---- confidence ---------------------------------------------------------------------------------
def word_correctness(ref_text: str, hyp: Transcript) -> list[bool | None]:
    """For each hypothesis word: matched to the reference, or None when it is only punctuation."""
    hyp_words = [w.word for w in hyp.words]
    correct: list[bool | None] = [False if normalize_word(w) else None for w in hyp_words]
    for _, j in matched_words(ref_text.split(), hyp_words):
        correct[j] = True
    return correct


def confidence_auroc(confidences: Sequence[float], correct: Sequence[bool]) -> float | None:
    """Area under the ROC curve of confidence as a detector of correct words.

    The Mann-Whitney form: the probability that a random correct word has a higher confidence
    than a random wrong one, ties counting one half (average ranks). None when all words are
    correct or all wrong, as the area is then undefined.
    """
    x = np.asarray(confidences, dtype=np.float64)
    y = np.asarray(correct, dtype=bool)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(
            f"confidences and correct must be equal-length 1-D, got {x.shape} and {y.shape}"
        )
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(x, kind="mergesort")
    _, first, counts = np.unique(x[order], return_index=True, return_counts=True)
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(first + (counts + 1) / 2, counts)  # 1-based average ranks
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
