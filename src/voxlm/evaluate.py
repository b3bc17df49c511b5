"""Evaluating a model: transcribe a corpus; report text, timing, confidence, hallucination, speed.

The metric functions are ``voxlm.metrics``' (re-exported here, their earlier home); this module
runs the model, times it, gathers the metrics into one ``EvaluationReport`` and adds what needs
the model itself: words written on generated non-speech and peak memory. Timing is scored only
on words the model got right (matched by an edit-distance alignment), because the time of a
misrecognised word has no reference to be compared with. The report's markdown, plots and
printed table are ``voxlm.report``'s.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from voxlm.audio import SAMPLE_RATE, load_audio
from voxlm.calibration import (
    ReliabilityBin,
    brier_score,
    expected_calibration_error,
    reliability_bins,
)
from voxlm.decoding import DecodingOptions
from voxlm.metrics import (
    NORMALIZERS,
    EditCounts,
    SegmentCounts,
    boundary_errors,
    confidence_auroc,
    edit_counts,
    proportional_onsets,
    segment_counts,
    share_within,
    word_correctness,
)
from voxlm.metrics import char_error_rate as char_error_rate  # re-exported: earlier home
from voxlm.metrics import word_error_rate as word_error_rate  # re-exported: earlier home
from voxlm.results import Transcript
from voxlm.text import align_words as align_words  # re-exported: earlier home
from voxlm.text import matched_words as matched_words  # re-exported: earlier home
from voxlm.text import normalize_text as normalize_text  # re-exported: earlier home
from voxlm.text import normalize_word as normalize_word  # re-exported: earlier home

if TYPE_CHECKING:
    from voxlm.data.manifest import Utterance
    from voxlm.model import VoxLM

logger = logging.getLogger("voxlm")

WITHIN_MS = (20, 50, 100)  # the tolerances of the "share within" timing metrics


@dataclass(frozen=True)
class EvaluationOptions:
    """What ``voxlm evaluate`` measures besides the decoding; the CLI flags come from here.

    normalizer: a key of ``NORMALIZERS``. collar_ms: the word-segment F1's tolerance on both
    ends of a word (CrisperWhisper's 50 ms). worst: how many utterances the report lists.
    nonspeech_seconds: the length of each generated non-speech signal (0: none).
    """

    normalizer: str = "english"
    collar_ms: float = 50.0
    worst: int = 10
    nonspeech_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.normalizer not in NORMALIZERS:
            raise ValueError(
                f"normalizer must be one of {sorted(NORMALIZERS)}, got {self.normalizer!r}"
            )
        for name in ("collar_ms", "worst", "nonspeech_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class UtteranceScore:
    """One utterance's normalised reference and hypothesis, for the list of the worst."""

    id: str
    speaker: str
    reference: str
    hypothesis: str
    errors: int
    n_ref_words: int
    wer: float

    def to_dict(self) -> dict:
        return asdict(self)


def _text_metrics(
    utterances: Sequence[Utterance], transcripts: Sequence[Transcript], options: EvaluationOptions
) -> dict:
    """WER, CER, WER per speaker (a corpus WER hides a voice the model cannot follow), and the
    utterances with the highest WER (those with errors), for a reader to see what went wrong."""
    norm = NORMALIZERS[options.normalizer]
    words, chars = EditCounts(0, 0, 0, 0), EditCounts(0, 0, 0, 0)
    by_speaker: dict[str, EditCounts] = {}
    scores = []
    for u, t in zip(utterances, transcripts, strict=True):
        counts = edit_counts([u.text], [t.text], "word", options.normalizer)
        words += counts
        chars += edit_counts([u.text], [t.text], "char", options.normalizer)
        if u.speaker:
            by_speaker[u.speaker] = by_speaker.get(u.speaker, EditCounts(0, 0, 0, 0)) + counts
        scores.append(
            UtteranceScore(
                id=u.id,
                speaker=u.speaker,
                reference=norm(u.text),
                hypothesis=norm(t.text),
                errors=counts.errors,
                n_ref_words=counts.n_ref,
                wer=counts.rate,
            )
        )
    scores.sort(key=lambda s: (-s.wer, -s.errors, s.id))
    return {
        "normalizer": options.normalizer,
        "wer": words.rate,
        "cer": chars.rate,
        "wer_by_speaker": {k: v.rate for k, v in sorted(by_speaker.items())},
        "worst_utterances": tuple(s for s in scores[: options.worst] if s.errors),
    }


def _boundary_metrics(name: str, errors: Sequence[float]) -> dict[str, float | None]:
    """MAE, median absolute error, mean signed error (bias) in ms, shares within WITHIN_MS."""
    e = np.asarray(errors, dtype=np.float64) * 1000.0
    empty = not len(e)
    out: dict[str, float | None] = {
        f"{name}_mae_ms": None if empty else float(np.abs(e).mean()),
        f"{name}_median_ms": None if empty else float(np.median(np.abs(e))),
        f"{name}_bias_ms": None if empty else float(e.mean()),
    }
    for ms in WITHIN_MS:
        out[f"{name}_within_{ms}ms"] = share_within(errors, ms)
    return out


def _timing_metrics(
    utterances: Sequence[Utterance], transcripts: Sequence[Transcript], collar: float
) -> dict:
    """Boundary errors, collar F1 and the baseline over utterances with reference word times."""
    errors: list[tuple[float, float]] = []
    baseline: list[float] = []
    segments = SegmentCounts(0, 0, 0)
    for u, t in zip(utterances, transcripts, strict=True):
        if u.words is None:
            continue
        errors.extend(boundary_errors(u.words, t))
        segments = segments + segment_counts(u.words, t, collar)
        guess = proportional_onsets(" ".join(w[0] for w in u.words), t.audio_duration)
        baseline.extend(g - w[1] for g, w in zip(guess, u.words, strict=True))
    return {
        "n_timed_words": len(errors),
        **_boundary_metrics("onset", [e[0] for e in errors]),
        **_boundary_metrics("offset", [e[1] for e in errors]),
        "baseline_onset_mae_ms": float(np.abs(baseline).mean() * 1000.0) if baseline else None,
        "segment_collar_ms": collar * 1000.0,
        "segment_precision": segments.precision,
        "segment_recall": segments.recall,
        "segment_f1": segments.f1,
    }


# ---- the metrics of a corpus --------------------------------------------------------------------
def _confidence_metrics(utterances: Sequence[Utterance], transcripts: Sequence[Transcript]) -> dict:
    """Ranking (AUROC), calibration (ECE, reliability bins) and both (Brier) of word confidence."""
    pairs = [
        (word.confidence, flag)
        for u, t in zip(utterances, transcripts, strict=True)
        for word, flag in zip(t.words, word_correctness(u.text, t), strict=True)
        if flag is not None
    ]
    conf = np.asarray([c for c, _ in pairs], dtype=np.float64)
    right = np.asarray([k for _, k in pairs], dtype=bool)
    return {
        "n_scored_words": len(conf),
        "confidence_auroc": confidence_auroc(conf, right),
        "confidence_ece": expected_calibration_error(conf, right),
        "confidence_brier": brier_score(conf, right),
        "mean_confidence_correct": float(conf[right].mean()) if right.any() else None,
        "mean_confidence_wrong": float(conf[~right].mean()) if (~right).any() else None,
        "reliability": tuple(reliability_bins(conf, right)),
    }


# ---- hallucination on non-speech ----------------------------------------------------------------
@dataclass(frozen=True)
class NonSpeechResult:
    """What the model wrote for one generated signal with no speech in it (should be nothing)."""

    kind: str
    seconds: float
    n_words: int
    words_per_minute: float
    stop_reason: str | None
    text: str

    def to_dict(self) -> dict:
        return asdict(self)


def nonspeech_results(
    model: VoxLM, seconds: float = 60.0, options: DecodingOptions | None = None
) -> tuple[NonSpeechResult, ...]:
    """Transcribe each ``voxlm.data.nonspeech`` signal: words per minute there is hallucination."""
    from voxlm.data.nonspeech import non_speech

    signals = non_speech(seconds)
    results = model.transcribe(list(signals.values()), sample_rate=SAMPLE_RATE, options=options)
    return tuple(
        NonSpeechResult(
            kind, seconds, len(r.words), 60.0 * len(r.words) / seconds, r.stop_reason, r.text
        )
        for kind, r in zip(signals, results, strict=True)
    )


# ---- the report ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvaluationReport:
    """Corpus metrics. Times in milliseconds, shares in [0, 1]; None where nothing was measured.

    Text: ``wer``, ``cer``, ``wer_by_speaker`` (utterances that name one) and the worst
    utterances, all after the ``normalizer``. Timing (correct words of utterances with reference
    word times): onset and offset MAE, median absolute error, bias (mean signed error) and the
    shares within 20 / 50 / 100 ms; the baseline is ``proportional_onsets``; the segment
    precision, recall and F1 are ``segment_counts`` at ``segment_collar_ms``. Confidence over
    ``n_scored_words`` words: AUROC, ECE and Brier (``voxlm.calibration``), reliability bins.
    ``stop_reasons`` counts the rule that ended each utterance; ``nonspeech`` is the non-speech
    set (empty when not run). Speed: ``rtfx`` is audio seconds per decoding second and
    ``real_time_factor`` its inverse; decoding only, not reading files. ``peak_rss_mb`` is the
    process's peak resident memory (model loading included), ``cuda_peak_mb`` the peak CUDA
    memory allocated while decoding on a GPU.
    """

    n_utterances: int
    n_failed: int
    normalizer: str
    wer: float
    cer: float
    wer_by_speaker: dict[str, float]
    worst_utterances: tuple[UtteranceScore, ...]
    n_timed_words: int
    onset_mae_ms: float | None
    onset_median_ms: float | None
    onset_bias_ms: float | None
    onset_within_20ms: float | None
    onset_within_50ms: float | None
    onset_within_100ms: float | None
    offset_mae_ms: float | None
    offset_median_ms: float | None
    offset_bias_ms: float | None
    offset_within_20ms: float | None
    offset_within_50ms: float | None
    offset_within_100ms: float | None
    baseline_onset_mae_ms: float | None
    segment_collar_ms: float
    segment_precision: float | None
    segment_recall: float | None
    segment_f1: float | None
    n_scored_words: int
    confidence_auroc: float | None
    confidence_ece: float | None
    confidence_brier: float | None
    mean_confidence_correct: float | None
    mean_confidence_wrong: float | None
    reliability: tuple[ReliabilityBin, ...]
    stop_reasons: dict[str, int]
    audio_seconds: float
    decode_seconds: float | None
    rtfx: float | None
    real_time_factor: float | None
    nonspeech: tuple[NonSpeechResult, ...] = ()
    peak_rss_mb: float | None = None
    cuda_peak_mb: float | None = None

    def to_dict(self) -> dict:
        """Plain JSON types: the tuples of records become lists."""
        values = asdict(self)
        for name in ("worst_utterances", "reliability", "nonspeech"):
            values[name] = list(values[name])
        return values


def score(
    utterances: Sequence[Utterance],
    transcripts: Sequence[Transcript],
    n_failed: int = 0,
    decode_seconds: float | None = None,
    options: EvaluationOptions | None = None,
) -> EvaluationReport:
    """The report for transcripts of utterances (same order); no model involved."""
    if len(utterances) != len(transcripts):
        raise ValueError(f"{len(utterances)} utterances but {len(transcripts)} transcripts")
    options = options or EvaluationOptions()
    audio_seconds = float(sum(t.audio_duration for t in transcripts))
    timed = decode_seconds is not None and decode_seconds > 0 and audio_seconds > 0
    return EvaluationReport(
        n_utterances=len(utterances),
        n_failed=n_failed,
        **_text_metrics(utterances, transcripts, options),
        **_timing_metrics(utterances, transcripts, options.collar_ms / 1000.0),
        **_confidence_metrics(utterances, transcripts),
        stop_reasons=dict(Counter(str(t.stop_reason) for t in transcripts)),
        audio_seconds=audio_seconds,
        decode_seconds=decode_seconds,
        rtfx=audio_seconds / decode_seconds if timed else None,
        real_time_factor=decode_seconds / audio_seconds if timed else None,
    )


def peak_rss_mb() -> float | None:
    """This process's peak resident memory in MiB so far; None where the OS does not say."""
    try:
        import resource  # POSIX only
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, else KiB


def _decode_all(
    model: VoxLM, waves: list[np.ndarray], options: DecodingOptions, progress: bool
) -> tuple[list[Transcript], float]:
    """Transcripts of the waves in batches, and the seconds spent decoding them."""
    transcripts: list[Transcript] = []
    seconds = 0.0
    steps = range(0, len(waves), options.batch_size)
    for start in tqdm(steps, desc="evaluate", unit="batch", disable=not progress):
        began = time.perf_counter()
        batch = waves[start : start + options.batch_size]
        transcripts.extend(model.transcribe(batch, sample_rate=SAMPLE_RATE, options=options))
        seconds += time.perf_counter() - began
    return transcripts, seconds


def evaluate(
    model: VoxLM,
    utterances: Sequence[Utterance],
    batch_size: int = 8,
    options: DecodingOptions | None = None,
    progress: bool = True,
    evaluation: EvaluationOptions | None = None,
) -> tuple[EvaluationReport, list[Transcript | None]]:
    """Transcribe utterances, score them, and transcribe the non-speech set where asked.

    A file that cannot be read is logged, counted in ``n_failed`` and skipped. Returns the
    report and one entry per input utterance: its transcript, or None where the file failed.
    Without ``evaluation`` options the utterances are scored with the defaults and no non-speech
    set is generated, as training, calibration and the demo need only the utterances.
    """
    import torch

    evaluation = evaluation or EvaluationOptions(nonspeech_seconds=0.0)
    options = replace(options or DecodingOptions(**model.decoding), batch_size=batch_size)
    waves: list[np.ndarray | None] = []
    for u in utterances:
        try:
            waves.append(load_audio(u.audio_path))
        except (ValueError, OSError) as error:
            logger.warning("skipping %s (%s): %s", u.id, u.audio_path, error)
            waves.append(None)
    ok = [i for i, w in enumerate(waves) if w is not None]
    on_gpu = model.device.type == "cuda"
    if on_gpu:
        torch.cuda.reset_peak_memory_stats(model.device)
    decoded, decode_seconds = _decode_all(model, [waves[i] for i in ok], options, progress)
    cuda_peak = torch.cuda.max_memory_allocated(model.device) / 2**20 if on_gpu else None
    transcripts: list[Transcript | None] = [None] * len(utterances)
    for i, result in zip(ok, decoded, strict=True):
        transcripts[i] = result
    report = score(
        [utterances[i] for i in ok], decoded, len(utterances) - len(ok), decode_seconds, evaluation
    )
    nonspeech = ()
    if evaluation.nonspeech_seconds > 0:
        nonspeech = nonspeech_results(model, evaluation.nonspeech_seconds, options)
    report = replace(report, nonspeech=nonspeech, peak_rss_mb=peak_rss_mb(), cuda_peak_mb=cuda_peak)
    return report, transcripts
