"""Scoring transcripts: word and character error rates, word onset errors, confidence AUROC.

Every metric compares normalised text (``normalize_text``), applied the same way to references
and hypotheses, so a capital letter or a comma is never counted as a recognition error.
Timing is scored only on words the model got right (matched by an edit-distance alignment),
because the onset of a misrecognised word has no reference to be compared with.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import jiwer
import numpy as np
from tqdm.auto import tqdm

from voxlm.audio import SAMPLE_RATE, load_audio
from voxlm.decoding import DecodingOptions
from voxlm.results import Transcript
from voxlm.text import align_words as align_words  # re-exported: earlier home
from voxlm.text import matched_words, normalize_text, normalize_word

if TYPE_CHECKING:
    from voxlm.data.manifest import Utterance, WordTiming
    from voxlm.model import VoxLM

logger = logging.getLogger("voxlm")


def _check_pairs(refs: Sequence[str], hyps: Sequence[str]) -> None:
    if isinstance(refs, str) or isinstance(hyps, str):
        raise ValueError("refs and hyps must be lists of transcripts, not single strings")
    if len(refs) != len(hyps):
        raise ValueError(f"got {len(refs)} references but {len(hyps)} hypotheses; expected equal")


def word_error_rate(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus WER: (substitutions + deletions + insertions) over all utterances / reference words.

    Texts are normalised first. With no reference words at all it is 0.0 when the hypotheses
    are empty too, else 1.0 (every word is an insertion).
    """
    _check_pairs(refs, hyps)
    out = jiwer.process_words([normalize_text(r) for r in refs], [normalize_text(h) for h in hyps])
    errors = out.substitutions + out.deletions + out.insertions
    n_ref = out.hits + out.substitutions + out.deletions
    return errors / n_ref if n_ref else float(errors > 0)


def char_error_rate(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus CER over normalised texts: character edits / reference characters (spaces count)."""
    _check_pairs(refs, hyps)
    out = jiwer.process_characters(
        [normalize_text(r) for r in refs], [normalize_text(h) for h in hyps]
    )
    errors = out.substitutions + out.deletions + out.insertions
    n_ref = out.hits + out.substitutions + out.deletions
    return errors / n_ref if n_ref else float(errors > 0)


def onset_errors(ref_timed: Sequence[WordTiming], hyp: Transcript) -> list[float]:
    """Signed onset errors (hypothesis start - reference start, seconds) of correct words.

    A word counts when the alignment of the normalised words matches it to a reference word;
    substituted, inserted and deleted words have no counterpart and are left out.
    """
    pairs = matched_words([w for w, _, _ in ref_timed], [w.word for w in hyp.words])
    return [hyp.words[j].start - ref_timed[i][1] for i, j in pairs]


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


@dataclass(frozen=True)
class EvaluationReport:
    """Corpus metrics. Times in milliseconds; None where there was nothing to measure.

    Onset metrics cover correctly recognised words of utterances with reference word times;
    the baseline is ``proportional_onsets`` on the same utterances' reference words.
    real_time_factor is decoding seconds per second of audio (below 1 is faster than real time).
    wer_by_speaker: WER over each speaker's utterances (those that name one), because a corpus
    WER hides a voice or accent the model cannot follow.
    """

    n_utterances: int
    n_failed: int
    wer: float
    cer: float
    n_timed_words: int
    onset_mae_ms: float | None
    onset_median_ms: float | None
    onset_within_50ms: float | None
    onset_within_100ms: float | None
    onset_bias_ms: float | None
    baseline_onset_mae_ms: float | None
    confidence_auroc: float | None
    mean_confidence_correct: float | None
    mean_confidence_wrong: float | None
    stop_reasons: dict[str, int]
    audio_seconds: float
    real_time_factor: float | None
    wer_by_speaker: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


_ONSET_FIELDS = (
    "onset_mae_ms",
    "onset_median_ms",
    "onset_within_50ms",
    "onset_within_100ms",
    "onset_bias_ms",
)


def _onset_metrics(errors: Sequence[float]) -> dict[str, float | None]:
    if not len(errors):
        return dict.fromkeys(_ONSET_FIELDS)
    e = np.asarray(errors, dtype=np.float64) * 1000.0
    a = np.abs(e)
    return {
        "onset_mae_ms": float(a.mean()),
        "onset_median_ms": float(np.median(a)),
        "onset_within_50ms": float((a <= 50.0).mean()),
        "onset_within_100ms": float((a <= 100.0).mean()),
        "onset_bias_ms": float(e.mean()),
    }


def score(
    utterances: Sequence[Utterance],
    transcripts: Sequence[Transcript],
    n_failed: int = 0,
    decode_seconds: float | None = None,
) -> EvaluationReport:
    """The report for transcripts of utterances (same order); no model involved."""
    if len(utterances) != len(transcripts):
        raise ValueError(f"{len(utterances)} utterances but {len(transcripts)} transcripts")
    errors, baseline, confidences, correct = [], [], [], []
    by_speaker: dict[str, tuple[list[str], list[str]]] = {}
    for u, t in zip(utterances, transcripts, strict=True):
        if u.speaker:
            refs, hyps = by_speaker.setdefault(u.speaker, ([], []))
            refs.append(u.text)
            hyps.append(t.text)
        for word, flag in zip(t.words, word_correctness(u.text, t), strict=True):
            if flag is not None:
                confidences.append(word.confidence)
                correct.append(flag)
        if u.words:
            errors.extend(onset_errors(u.words, t))
            guess = proportional_onsets(" ".join(w for w, _, _ in u.words), t.audio_duration)
            baseline.extend(g - s for g, (_, s, _) in zip(guess, u.words, strict=True))
    audio_seconds = float(sum(t.audio_duration for t in transcripts))
    conf, right = np.asarray(confidences), np.asarray(correct, dtype=bool)
    return EvaluationReport(
        n_utterances=len(utterances),
        n_failed=n_failed,
        wer=word_error_rate([u.text for u in utterances], [t.text for t in transcripts]),
        cer=char_error_rate([u.text for u in utterances], [t.text for t in transcripts]),
        n_timed_words=len(errors),
        **_onset_metrics(errors),
        baseline_onset_mae_ms=_mean(np.abs(baseline) * 1000.0) if baseline else None,
        confidence_auroc=confidence_auroc(confidences, correct),
        mean_confidence_correct=_mean(conf[right]) if len(conf) else None,
        mean_confidence_wrong=_mean(conf[~right]) if len(conf) else None,
        stop_reasons=dict(Counter(str(t.stop_reason) for t in transcripts)),
        audio_seconds=audio_seconds,
        real_time_factor=(
            decode_seconds / audio_seconds if decode_seconds is not None and audio_seconds else None
        ),
        wer_by_speaker={k: word_error_rate(*v) for k, v in sorted(by_speaker.items())},
    )


def evaluate(
    model: VoxLM,
    utterances: Sequence[Utterance],
    batch_size: int = 8,
    options: DecodingOptions | None = None,
    progress: bool = True,
) -> tuple[EvaluationReport, list[Transcript | None]]:
    """Transcribe utterances and score them against their text and word times.

    A file that cannot be read is logged, counted in ``n_failed`` and skipped. Returns the
    report and one entry per input utterance: its transcript, or None where the file failed.
    The real-time factor times decoding only, not reading audio files.
    """
    options = replace(options or DecodingOptions(), batch_size=batch_size)
    waves: list[np.ndarray | None] = []
    for u in utterances:
        try:
            waves.append(load_audio(u.audio_path))
        except (ValueError, OSError) as error:
            logger.warning("skipping %s (%s): %s", u.id, u.audio_path, error)
            waves.append(None)
    ok = [i for i, w in enumerate(waves) if w is not None]
    transcripts: list[Transcript | None] = [None] * len(utterances)
    decode_seconds = 0.0
    for start in tqdm(
        range(0, len(ok), batch_size), desc="evaluate", unit="batch", disable=not progress
    ):
        batch = ok[start : start + batch_size]
        began = time.perf_counter()
        results = model.transcribe(
            [waves[i] for i in batch], sample_rate=SAMPLE_RATE, options=options
        )
        decode_seconds += time.perf_counter() - began
        for i, result in zip(batch, results, strict=True):
            transcripts[i] = result
    report = score(
        [utterances[i] for i in ok],
        [transcripts[i] for i in ok],  # type: ignore[misc]
        n_failed=len(utterances) - len(ok),
        decode_seconds=decode_seconds,
    )
    return report, transcripts
