"""Calibrated word confidence: a word marked 0.9 should be right nine times in ten.

A word's raw confidence (``voxlm.timing.word_confidence`` times the n-best posterior) ranks
words well (AUROC) but is not a probability: token probabilities of a model trained with
cross-entropy, flattened by ``confidence_temperature`` and multiplied by the beam's agreement,
say nothing about how often words at 0.9 are right. A calibration map, fitted on dev words
marked right or wrong against their reference (``voxlm.evaluate.word_correctness``), turns the
raw score into that frequency. Two maps are fitted and the one with the lower expected
calibration error on held-out dev words (k-fold cross-validation) is kept:

- ``platt``: logistic regression on the logit of the score (Platt 1999), two parameters,
  smooth and monotonic; temperature scaling is its special case with no offset.
- ``isotonic``: the best non-decreasing step function (pool-adjacent-violators), free of any
  shape assumption but able to overfit a small dev set, which cross-validation exposes.
- ``identity`` (the raw score) stays a candidate, so a map that does not beat it on held-out
  words is not applied.

The metrics (equal-mass reliability bins, ECE, Brier score) are the project's one definition.
A saved model keeps its map in ``calibration.json`` (``CALIBRATION_FILE``); transcription
applies it unless ``DecodingOptions.calibrate`` is off, and each word keeps its raw score in
``Word.raw_confidence``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from voxlm.results import Transcript

if TYPE_CHECKING:
    from voxlm.data.manifest import Utterance
    from voxlm.decoding import DecodingOptions
    from voxlm.model import VoxLM

logger = logging.getLogger("voxlm")

CALIBRATION_FILE = "calibration.json"
N_BINS = 15  # equal-mass reliability bins: each holds about 1/15 of the words
N_FOLDS = 5  # cross-validation folds for choosing the map
# Below this, bins of under 20 words make ECE (and so the choice of map) mostly noise.
FEW_WORDS = 20 * N_BINS
METHODS = ("identity", "platt", "isotonic")  # on a tie in held-out ECE the first wins
_EPS = 1e-6  # scores are clipped to [eps, 1 - eps] before their logit


class NothingToCalibrate(ValueError):
    """Too few scored words to fit a calibration (a model that wrote (almost) nothing)."""


# ---- metrics ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReliabilityBin:
    """Words whose confidence falls in [lower, upper]: how sure they were and how often right."""

    lower: float
    upper: float
    count: int
    mean_confidence: float
    accuracy: float

    def to_dict(self) -> dict:
        return asdict(self)


def _pairs(confidences: Sequence[float], correct: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(confidences, dtype=np.float64)
    y = np.asarray(correct, dtype=bool)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(
            f"confidences and correct must be equal-length 1-D, got {x.shape} and {y.shape}"
        )
    return x, y


def reliability_bins(
    confidences: Sequence[float], correct: Sequence[bool], n_bins: int = N_BINS
) -> list[ReliabilityBin]:
    """Words sorted by confidence and split into ``n_bins`` groups of near-equal count.

    Equal mass rather than equal width: confident models put most words above 0.9, where
    equal-width bins would hold nearly all words in one or two bins and leave the rest empty
    and noisy. Words of equal confidence always share a bin (a boundary inside a tie moves to
    its end): they cannot be told apart, and splitting them by input order would add noise to
    ECE, most for maps with few distinct values such as isotonic. So many ties, or fewer
    words than bins, give fewer bins; no words, no bins.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    x, y = _pairs(confidences, correct)
    if not len(x):
        return []
    order = np.argsort(x, kind="mergesort")
    ranked = x[order]
    sizes = [len(g) for g in np.array_split(order, min(n_bins, len(x)))]
    edges = np.cumsum(sizes)[:-1]  # where each bin after the first starts in ``ranked``
    edges = np.searchsorted(ranked, ranked[edges - 1], side="right")  # past any tie
    groups = np.split(order, np.unique(edges[edges < len(x)]))
    return [
        ReliabilityBin(
            lower=float(x[g].min()),
            upper=float(x[g].max()),
            count=len(g),
            mean_confidence=float(x[g].mean()),
            accuracy=float(y[g].mean()),
        )
        for g in groups
    ]


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], n_bins: int = N_BINS
) -> float | None:
    """Count-weighted mean of |accuracy - mean confidence| over the equal-mass bins; None for
    no words. 0 is perfectly calibrated; a model at 0.95 that is right 75% of the time has 0.2."""
    bins = reliability_bins(confidences, correct, n_bins)
    total = sum(b.count for b in bins)
    if not total:
        return None
    return sum(b.count * abs(b.accuracy - b.mean_confidence) for b in bins) / total


def brier_score(confidences: Sequence[float], correct: Sequence[bool]) -> float | None:
    """Mean squared difference between confidence and outcome (1 right, 0 wrong); None for no
    words. Unlike ECE it also rewards separating right from wrong words (sharpness)."""
    x, y = _pairs(confidences, correct)
    return float(np.mean((x - y) ** 2)) if len(x) else None


@dataclass(frozen=True)
class ConfidenceReport:
    """How good a set of word confidences is: calibration (ECE, bins), both (Brier), ranking
    (AUROC, ``voxlm.evaluate.confidence_auroc``). None where there was nothing to measure."""

    n_words: int
    accuracy: float | None
    mean_confidence: float | None
    ece: float | None
    brier: float | None
    auroc: float | None
    bins: tuple[ReliabilityBin, ...]

    def to_dict(self) -> dict:
        return asdict(self)


def confidence_report(
    confidences: Sequence[float], correct: Sequence[bool], n_bins: int = N_BINS
) -> ConfidenceReport:
    from voxlm.evaluate import confidence_auroc

    x, y = _pairs(confidences, correct)
    return ConfidenceReport(
        n_words=len(x),
        accuracy=float(y.mean()) if len(x) else None,
        mean_confidence=float(x.mean()) if len(x) else None,
        ece=expected_calibration_error(x, y, n_bins),
        brier=brier_score(x, y),
        auroc=confidence_auroc(x, y),
        bins=tuple(reliability_bins(x, y, n_bins)),
    )


@dataclass(frozen=True)
class ScoredWords:
    """The words of transcripts marked right or wrong against their references, one entry per
    word (punctuation-only words left out, as ``voxlm.evaluate.score`` does)."""

    confidence: np.ndarray  # [W] what transcription returned
    raw_confidence: np.ndarray  # [W] before any calibration (= confidence where none applied)
    correct: np.ndarray  # [W] bool
    speaker: np.ndarray  # [W] str: the utterance's speaker, "" where it names none


def scored_words(
    utterances: Sequence[Utterance], transcripts: Sequence[Transcript | None]
) -> ScoredWords:
    """Each hypothesis word's confidences and correctness; failed files (None) are skipped."""
    from voxlm.evaluate import word_correctness

    rows = [
        (
            w.confidence,
            w.confidence if w.raw_confidence is None else w.raw_confidence,
            flag,
            u.speaker or "",
        )
        for u, t in zip(utterances, transcripts, strict=True)
        if t is not None
        for w, flag in zip(t.words, word_correctness(u.text, t), strict=True)
        if flag is not None
    ]
    columns = list(zip(*rows, strict=True)) if rows else [(), (), (), ()]
    return ScoredWords(
        confidence=np.asarray(columns[0], dtype=np.float64),
        raw_confidence=np.asarray(columns[1], dtype=np.float64),
        correct=np.asarray(columns[2], dtype=bool),
        speaker=np.asarray(columns[3], dtype=str),
    )


# ---- the maps -----------------------------------------------------------------------------------
def _logit(scores: np.ndarray) -> np.ndarray:
    p = np.clip(scores, _EPS, 1.0 - _EPS)
    return np.log(p) - np.log1p(-p)


def fit_platt(scores: Sequence[float], correct: Sequence[bool]) -> dict[str, float]:
    """p = sigmoid(a * logit(score) + b), by Newton's method on the log loss.

    Targets are Platt's smoothed labels, (N+ + 1) / (N+ + 2) for right words and 1 / (N- + 2)
    for wrong ones, instead of 1 and 0: the fit then stays finite when the scores separate the
    classes perfectly or only one class is present, as on a small dev set. Starts from the
    identity (a=1, b=0) and halves each step until the loss falls.
    """
    x, y = _pairs(scores, correct)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    target = np.where(y, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    features = np.stack([_logit(x), np.ones_like(x)], axis=1)  # [W, 2]

    def loss(w: np.ndarray) -> float:
        z = features @ w
        return float(np.sum(np.logaddexp(0.0, z) - target * z))

    w = np.array([1.0, 0.0])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(features @ w)))
        gradient = features.T @ (p - target)
        hessian = features.T @ (features * (p * (1 - p))[:, None]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        current, scale = loss(w), 1.0
        while loss(w - scale * step) > current and scale > 1e-6:
            scale /= 2
        w = w - scale * step
        if np.abs(scale * step).max() < 1e-9:
            break
    return {"a": float(w[0]), "b": float(w[1])}


def fit_isotonic(scores: Sequence[float], correct: Sequence[bool]) -> dict[str, list[float]]:
    """The non-decreasing fit of correctness on score by pool-adjacent-violators.

    Returns knots (x, y): each pooled block's lowest and highest score at its accuracy, so the
    map is flat within a block and linear between blocks (as scikit-learn's
    ``IsotonicRegression``), and constant beyond the ends. Written here in numpy rather than
    adding scikit-learn (and its scipy, joblib and threadpoolctl) to the dependencies for one
    twenty-line algorithm on one dimension.
    """
    x, y = _pairs(scores, correct)
    unique, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=y.astype(np.float64))
    blocks: list[list[float]] = []  # [value, weight, first index, last index]
    for i, (total, count) in enumerate(zip(sums, counts, strict=True)):
        value, weight, first = total / count, float(count), i
        while blocks and blocks[-1][0] >= value:  # a violator (or a tie): pool them
            previous, previous_weight, first, _ = blocks.pop()
            value = (previous * previous_weight + value * weight) / (previous_weight + weight)
            weight += previous_weight
        blocks.append([value, weight, first, i])
    knots = [
        (float(unique[k]), float(value))
        for value, _, first, last in blocks
        for k in sorted({int(first), int(last)})
    ]
    return {"x": [k[0] for k in knots], "y": [k[1] for k in knots]}


def apply_map(method: str, parameters: dict[str, Any], scores: Sequence[float]) -> np.ndarray:
    """A fitted map's calibrated confidences of raw scores, in [0, 1]."""
    x = np.asarray(scores, dtype=np.float64)
    if method == "identity":
        return x.copy()
    if method == "platt":
        return 1.0 / (1.0 + np.exp(-(parameters["a"] * _logit(x) + parameters["b"])))
    if method == "isotonic":
        return np.interp(x, parameters["x"], parameters["y"])
    raise ValueError(f"calibration method must be one of {METHODS}, got {method!r}")


def _fit_map(method: str, scores: np.ndarray, correct: np.ndarray) -> dict[str, Any]:
    if method == "platt":
        return fit_platt(scores, correct)
    if method == "isotonic":
        return fit_isotonic(scores, correct)
    return {}


def _cross_validated(method: str, x: np.ndarray, y: np.ndarray, n_folds: int) -> np.ndarray:
    """Each word's calibrated confidence from the map fitted on the other folds' words. The
    folds are a fixed shuffle (seed 0), so the choice of map does not change between runs."""
    out = np.empty_like(x)
    for held_out in np.array_split(np.random.default_rng(0).permutation(len(x)), n_folds):
        train = np.ones(len(x), dtype=bool)
        train[held_out] = False
        out[held_out] = apply_map(method, _fit_map(method, x[train], y[train]), x[held_out])
    return out


# ---- the fitted calibration ---------------------------------------------------------------------
@dataclass(frozen=True)
class Calibration:
    """A fitted map from raw word confidence to the probability that the word is right.

    What ``calibration.json`` holds: the method and its parameters, what it was fitted on
    (words, how many right, utterances, the decoding's settings, since the raw score depends on
    them, and the weights' ``voxlm.weights.fingerprint``: a model trained on afterwards drops
    it), and each candidate's cross-validated dev ECE with the raw score's dev ECE, so the
    choice can be checked. ``dev_ece`` is the chosen map's held-out ECE, not its in-sample one.
    """

    method: str
    parameters: dict[str, Any]
    n_words: int
    n_correct: int
    n_utterances: int
    dev_ece_raw: float
    dev_ece: float
    cross_validated_ece: dict[str, float]
    n_folds: int = N_FOLDS
    n_bins: int = N_BINS
    decoding: dict[str, Any] | None = None
    weights_sha256: str | None = None

    def __post_init__(self) -> None:
        apply_map(self.method, self.parameters, [0.5])  # fails on an unknown method or key

    def __call__(self, confidences: Sequence[float]) -> np.ndarray:
        return apply_map(self.method, self.parameters, confidences)

    def apply(self, transcript: Transcript) -> Transcript:
        """The transcript with calibrated confidences, each word keeping its raw score."""
        if not transcript.words:
            return transcript
        calibrated = self([w.confidence for w in transcript.words])
        words = tuple(
            replace(w, confidence=float(c), raw_confidence=w.confidence)
            for w, c in zip(transcript.words, calibrated, strict=True)
        )
        return replace(transcript, words=words)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str) -> Calibration:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{source}: unknown calibration keys {unknown}; expected {known}")
        try:
            return cls(**values)
        except (TypeError, KeyError, ValueError) as error:
            raise ValueError(f"{source}: not a VoxLM calibration ({error})") from None

    def save(self, directory: str | Path) -> None:
        """Write ``calibration.json`` into a model directory."""
        path = Path(directory) / CALIBRATION_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> Calibration | None:
        """The calibration of a model directory, or None where it has no ``calibration.json``."""
        path = Path(directory) / CALIBRATION_FILE
        if not path.is_file():
            return None
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not JSON ({error})") from None
        return cls.from_dict(values, str(path))


def fit(
    confidences: Sequence[float],
    correct: Sequence[bool],
    n_utterances: int = 0,
    decoding: dict[str, Any] | None = None,
    weights_sha256: str | None = None,
) -> tuple[Calibration, np.ndarray]:
    """Choose the map with the lowest cross-validated ECE, fit it on all the words; returns the
    calibration and each word's held-out calibrated confidence under the chosen method."""
    x, y = _pairs(confidences, correct)
    if len(x) < N_FOLDS:
        raise NothingToCalibrate(f"calibration needs at least {N_FOLDS} scored words, got {len(x)}")
    if len(x) < FEW_WORDS:
        logger.warning("calibrating on only %d words: ECE and the choice of map are noisy", len(x))
    held_out = {m: _cross_validated(m, x, y, N_FOLDS) for m in METHODS}
    ece = {m: float(expected_calibration_error(p, y, N_BINS)) for m, p in held_out.items()}
    method = min(METHODS, key=lambda m: ece[m])  # min keeps the first of equal ones
    calibration = Calibration(
        method=method,
        parameters=_fit_map(method, x, y),
        n_words=len(x),
        n_correct=int(y.sum()),
        n_utterances=n_utterances,
        dev_ece_raw=ece["identity"],
        dev_ece=ece[method],
        cross_validated_ece=ece,
        decoding=decoding,
        weights_sha256=weights_sha256,
    )
    return calibration, held_out[method]


@dataclass(frozen=True)
class CalibrationReport:
    """The dev words' confidence before calibration and after it; "after" is each word's
    held-out (cross-validated) calibrated confidence, an honest estimate for new audio."""

    n_utterances: int
    raw: ConfidenceReport
    calibrated: ConfidenceReport

    def to_dict(self) -> dict:
        return asdict(self)


def decoding_settings(options: DecodingOptions) -> dict[str, Any]:
    """The decoding's settings that shape raw scores (a word list or n-gram model as whether
    one was used)."""
    values = {f.name: getattr(options, f.name) for f in fields(options) if f.name != "calibrate"}
    return {
        k: v if isinstance(v, bool | int | float | str) or v is None else True
        for k, v in values.items()
    }


def fit_calibration(
    model: VoxLM,
    utterances: Sequence[Utterance],
    options: DecodingOptions | None = None,
    progress: bool = True,
) -> tuple[Calibration, CalibrationReport]:
    """Transcribe dev utterances with ``options`` (any calibration the model has switched off),
    mark each word right or wrong against its reference, and fit the calibration map.

    Calibrate with the decoding used at inference: the beam's n-best posterior and
    ``confidence_temperature`` change the raw scores the map is fitted to.
    """
    from voxlm.decoding import DecodingOptions
    from voxlm.evaluate import evaluate
    from voxlm.weights import fingerprint

    options = replace(options or DecodingOptions(), calibrate=False)
    _, transcripts = evaluate(
        model, utterances, batch_size=options.batch_size, options=options, progress=progress
    )
    words = scored_words(utterances, transcripts)
    n_utterances = sum(t is not None for t in transcripts)
    calibration, held_out = fit(
        words.raw_confidence,
        words.correct,
        n_utterances,
        decoding_settings(options),
        fingerprint(model.trained_state_dict()),
    )
    report = CalibrationReport(
        n_utterances=n_utterances,
        raw=confidence_report(words.raw_confidence, words.correct),
        calibrated=confidence_report(held_out, words.correct),
    )
    return calibration, report


def plot_reliability(bins: Sequence[ReliabilityBin], path: str | Path, title: str) -> None:
    """A reliability diagram: each bin's accuracy against its mean confidence, over the bin's
    span of confidences, with the diagonal a calibrated model would follow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="gray", ls="--", lw=1, label="calibrated")
    for i, b in enumerate(bins):
        width = max(b.upper - b.lower, 0.005)  # a bin of tied scores still shows
        label = "bin span" if i == 0 else None
        ax.bar(b.lower, b.accuracy, width, align="edge", color="tab:blue", alpha=0.25, label=label)
    ax.plot(
        [b.mean_confidence for b in bins],
        [b.accuracy for b in bins],
        "o-",
        color="tab:red",
        label="accuracy at mean confidence",
    )
    n_words = sum(b.count for b in bins)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="share of words right")
    ax.set_title(f"{title}\n{n_words} words, {len(bins)} equal-count bins", fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
