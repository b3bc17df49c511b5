"""``voxlm demo``: the whole product on one CPU in minutes, from nothing.

Synthesise speech with exact word timings, train ``voxlm-tiny`` from scratch (phase 1:
transcription with an auxiliary CTC loss; phase 2: the aligner on word timings), evaluate on
held-out sentences and a held-out voice, and show one transcript with its timings.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from voxlm.audio import load_audio
from voxlm.config import CONFIG_DIR, VoxLMConfig, load_config
from voxlm.data.manifest import Utterance, read_manifest
from voxlm.decoding import DecodingOptions, Transcript
from voxlm.lexicon import Lexicon
from voxlm.model import VoxLM
from voxlm.ngram import NGramLM

if TYPE_CHECKING:
    from voxlm.calibration import Calibration
    from voxlm.evaluate import EvaluationReport

logger = logging.getLogger("voxlm")

LEXICON_FILE = "lexicon.txt"  # the training transcripts' words, for `--lexicon`
NGRAM_FILE = "ngram.txt"  # the training transcripts, one per line, for `--ngram`
NONSPEECH_SECONDS = 60.0  # each generated non-speech signal the test decoding must leave empty
QUIET_PEAK_DBFS = -30.0  # the level at which every test utterance must still count as speech
RECIPE = "voxlm-tiny-demo.yaml"  # the demo's training recipe, in voxlm/configs/
# DemoOptions fields that set keys of the recipe; None keeps the recipe's value.
RECIPE_KEYS: dict[str, tuple[str, ...]] = {
    "steps": ("training.phase1.max_steps",),
    "minutes": ("training.phase1.max_minutes",),
    "phase2_steps": ("training.phase2.max_steps",),
    "phase2_minutes": ("training.phase2.max_minutes",),
    "batch_size": ("training.phase1.batch_size", "training.phase2.batch_size"),
    "learning_rate": ("training.phase1.learning_rate",),
    "ctc_weight": ("training.phase1.ctc_weight",),
    "ctc_only_steps": ("training.phase1.ctc_only_steps",),
    "span_ctc_weight": ("training.phase1.span_ctc_weight",),
    "span_ctc_steps": ("training.phase1.span_ctc_steps",),
    "alignment_weight": ("training.phase1.alignment_weight",),
    "ctc_embeddings": ("model.ctc_embeddings",),
    "ctc_positions": ("model.ctc_positions",),
    "sortagrad": ("training.phase1.sortagrad",),
    "seed": ("training.seed",),  # also the corpus's seed
}
# The DemoOptions fields that are DecodingOptions fields of the test decoding.
DECODING_FIELDS = ("beam_size", "ctc_candidates", "confidence_temperature", "ngram_weight")


@dataclass(frozen=True)
class DemoOptions:
    """What ``voxlm demo`` can change: its directory, corpus size and test decoding, and keys of
    its training recipe (``RECIPE_KEYS``; None keeps the value in voxlm-tiny-demo.yaml, whose
    time budget fits a 2-core CPU in about ten minutes, see BENCHMARKS.md)."""

    output_dir: Path = Path("demo")
    # Phase budgets: steps, with minutes as a cap. Minutes given without steps make a pure
    # time budget (the run trains as many steps as the machine manages in that time).
    steps: int | None = None
    minutes: float | None = None
    phase2_steps: int | None = None
    phase2_minutes: float | None = None
    n_train: int = 6000
    n_dev: int = 150
    n_test: int = 400
    accent_prob: float = 0.5  # see SynthOptions.accent_prob
    batch_size: int | None = None
    learning_rate: float | None = None  # peak
    ctc_weight: float | None = None
    ctc_only_steps: int | None = None  # see PhaseConfig.ctc_only_steps
    span_ctc_weight: float | None = None  # see PhaseConfig.span_ctc_weight
    span_ctc_steps: int | None = None
    alignment_weight: float | None = None
    ctc_embeddings: bool | None = None  # see ModelConfig.ctc_embeddings
    ctc_positions: bool | None = None  # see ModelConfig.ctc_positions
    sortagrad: bool | None = None  # see PhaseConfig.sortagrad
    # Test decoding, chosen on the dev split (BENCHMARKS.md): beam search over the joint
    # CTC/LLM score, words limited to the training transcripts' (the test sentences are new
    # sentences of the same words), a word trigram model of the training transcripts fused
    # in, and flatter token probabilities for word confidence.
    beam_size: int = 8
    ctc_candidates: int = 16
    training_lexicon: bool = True
    training_ngram: bool = True
    ngram_weight: float = 0.5
    confidence_temperature: float = 2.0
    seed: int | None = None


def demo_config(options: DemoOptions) -> VoxLMConfig:
    """The recipe file with the options' changes, writing everything under ``output_dir``."""
    overrides: dict[str, Any] = {
        key: getattr(options, name)
        for name, keys in RECIPE_KEYS.items()
        if getattr(options, name) is not None
        for key in keys
    }
    for phase, steps, minutes in (
        (1, options.steps, options.minutes),
        (2, options.phase2_steps, options.phase2_minutes),
    ):
        if minutes is not None and steps is None:
            overrides[f"training.phase{phase}.max_steps"] = None
    out = options.output_dir
    overrides["data.data_dir"] = str(out / "data")
    overrides["output.output_dir"] = str(out)
    overrides["output.checkpoint_dir"] = str(out / "checkpoints")
    overrides["output.final_model_dir"] = str(out)
    return load_config(CONFIG_DIR / RECIPE, overrides)


def recipe_defaults() -> dict[str, Any]:
    """The recipe's value of each ``RECIPE_KEYS`` field: what None stands for (for ``--help``)."""
    values = load_config(CONFIG_DIR / RECIPE).to_dict()
    defaults = {}
    for name, (key, *_) in RECIPE_KEYS.items():
        node = values
        for part in key.split("."):
            node = node[part]
        defaults[name] = node
    return defaults


def decoding_command(options: DemoOptions) -> str:
    """The ``voxlm transcribe`` command line that decodes as the demo's test did."""
    out = options.output_dir
    flags = [f"--{name.replace('_', '-')} {getattr(options, name)}" for name in DECODING_FIELDS]
    if options.training_lexicon:
        flags.append(f"--lexicon {out / LEXICON_FILE}")
    if options.training_ngram:
        flags.append(f"--ngram {out / NGRAM_FILE}")
    return f"voxlm transcribe CLIP --model {out / 'model'} {' '.join(flags)}"


def run_demo(options: DemoOptions, progress: bool = True) -> dict:
    """Run every stage; returns the metrics also written to ``output_dir/metrics.json``."""
    from voxlm.evaluate import EvaluationOptions, evaluate
    from voxlm.training.pipeline import run_phase

    started = time.monotonic()
    out = Path(options.output_dir)
    config = demo_config(options)
    manifests, unseen = _corpus(options, config, progress)
    synth_minutes = (time.monotonic() - started) / 60

    model = VoxLM.from_config(config.model)
    phase1 = run_phase(config, 1, model, manifests, progress=progress)
    phase2 = run_phase(config, 2, model, manifests, progress=progress)
    model.eval().save_pretrained(out / "model")

    decoding = demo_decoding(options, read_manifest(manifests["train"]))
    dev = read_manifest(manifests["dev"])
    model.calibration = _calibrate(model, dev, decoding, out / "model", progress)
    test = read_manifest(manifests["test"])
    report, transcripts = evaluate(
        model,
        test,
        batch_size=32,
        options=decoding,
        progress=progress,
        evaluation=EvaluationOptions(nonspeech_seconds=NONSPEECH_SECONDS),
    )
    metrics = {
        **report.to_dict(),
        **_wer_by_voice(report, test, transcripts, unseen),
        **_confidence_metrics(test, transcripts, model.calibration, out),
        **_quiet_speech_metrics(model, test, decoding),
        "decoding": _decoding_metrics(decoding),
        "train_minutes": phase1.minutes + phase2.minutes,
        "phase1_steps": phase1.steps,
        "phase1_planned_steps": config.training.phase1.max_steps,
        "phase2_steps": phase2.steps,
        "phase2_planned_steps": config.training.phase2.max_steps,
        "synth_minutes": synth_minutes,
    }
    example = _example(test, transcripts)
    write_example(model, example[0], example[1], out)
    metrics["total_minutes"] = (time.monotonic() - started) / 60
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _corpus(
    options: DemoOptions, config: VoxLMConfig, progress: bool
) -> tuple[dict[str, Path], str | None]:
    """The synthetic corpus's manifests (made unless there already) and its unseen speaker."""
    from voxlm.data.synth import SynthOptions, synthesize_corpus

    data_dir = Path(config.data.data_dir)
    synth = SynthOptions(
        output_dir=data_dir,
        n_train=options.n_train,
        n_dev=options.n_dev,
        n_test=options.n_test,
        seed=config.training.seed,
        accent_prob=options.accent_prob,
    )
    if not (data_dir / "test.jsonl").is_file():
        synthesize_corpus(synth, progress=progress)
    manifests = {k: data_dir / f"{k}.jsonl" for k in ("train", "dev", "test")}
    return manifests, synth.held_out_speaker


def demo_decoding(options: DemoOptions, train: list[Utterance]) -> DecodingOptions:
    """The test decoding: the options' fields, with the training transcripts' lexicon and
    n-gram model where asked for; their files are written for ``decoding_command``."""
    out = Path(options.output_dir)
    training_texts = [u.text for u in train]
    lexicon = ngram = None
    if options.training_lexicon:
        lexicon = Lexicon(training_texts)
        (out / LEXICON_FILE).write_text("\n".join(lexicon.words) + "\n", encoding="utf-8")
    if options.training_ngram:
        ngram = NGramLM(training_texts)
        (out / NGRAM_FILE).write_text("\n".join(training_texts) + "\n", encoding="utf-8")
    return DecodingOptions(
        **{name: getattr(options, name) for name in DECODING_FIELDS}, lexicon=lexicon, ngram=ngram
    )


def _wer_by_voice(
    report: EvaluationReport,
    test: list[Utterance],
    transcripts: list[Transcript | None],
    unseen: str | None,
) -> dict[str, float | None]:
    """WER on the voices heard in training, and on the voice held out of it."""
    from voxlm.evaluate import word_error_rate

    seen = [
        (u.text, t.text)
        for u, t in zip(test, transcripts, strict=True)
        if t is not None and u.speaker != unseen
    ]
    return {
        "wer_training_voices": word_error_rate(*zip(*seen, strict=True)) if seen else None,
        "wer_unseen_voice": report.wer_by_speaker.get(unseen),
    }


def _calibrate(
    model: VoxLM, dev: list[Utterance], decoding: DecodingOptions, model_dir: Path, progress: bool
) -> Calibration | None:
    """The word-confidence calibration fitted on the dev split with the test decoding, also
    written into the saved model; None (with a warning) where the model wrote too few words."""
    from dataclasses import replace

    from voxlm.calibration import NothingToCalibrate, fit_calibration

    try:
        calibration, _ = fit_calibration(
            model, dev, replace(decoding, batch_size=32), progress=progress
        )
    except NothingToCalibrate as error:
        logger.warning("word confidence left uncalibrated: %s", error)
        return None
    calibration.save(model_dir)
    return calibration


def _confidence_metrics(
    test: list[Utterance],
    transcripts: list[Transcript | None],
    calibration: Calibration | None,
    out: Path,
) -> dict[str, Any]:
    """How well the test words' confidence is calibrated, raw and as returned (calibrated on
    the dev split), overall and per voice; the reliability diagram goes to reliability.png."""
    from voxlm.calibration import (
        confidence_report,
        expected_calibration_error,
        plot_reliability,
        scored_words,
    )

    words = scored_words(test, transcripts)
    raw = confidence_report(words.raw_confidence, words.correct)
    calibrated = confidence_report(words.confidence, words.correct)
    method = calibration.method if calibration is not None else "uncalibrated"
    title = f"test words, {method}"
    if raw.ece is not None:
        title += f": ECE {raw.ece:.3f} raw, {calibrated.ece:.3f} as returned"
    plot_reliability(calibrated.bins, out / "reliability.png", title)
    by_voice = {v: words.speaker == v for v in sorted(set(words.speaker.tolist()))}
    return {
        "calibration": None
        if calibration is None
        else {k: getattr(calibration, k) for k in ("method", "n_words", "dev_ece_raw", "dev_ece")},
        "confidence_ece_raw": raw.ece,
        "confidence_ece": calibrated.ece,
        "confidence_brier_raw": raw.brier,
        "confidence_brier": calibrated.brier,
        "confidence_auroc_raw": raw.auroc,
        "ece_by_voice": {
            v: expected_calibration_error(words.confidence[m], words.correct[m])
            for v, m in by_voice.items()
        },
        "reliability_bins_raw": [b.to_dict() for b in raw.bins],
        "reliability_bins": [b.to_dict() for b in calibrated.bins],
    }


def _quiet_speech_metrics(
    model: VoxLM, test: list[Utterance], decoding: DecodingOptions
) -> dict[str, Any]:
    """How many test utterances the speech detector still finds at ``QUIET_PEAK_DBFS`` peak: a
    quiet speaker must not come back as ``no_speech``. The ids of those missed are listed."""
    from voxlm.transcribe import speech_windows

    missed = []
    for u in test:
        try:
            wave = load_audio(u.audio_path)
        except (ValueError, OSError):
            continue  # already counted in n_failed by the evaluation
        peak = float(np.abs(wave).max())
        quiet = (wave * (10 ** (QUIET_PEAK_DBFS / 20) / peak)).astype(np.float32) if peak else wave
        if not any(w.speech for w in speech_windows(0, quiet, model, decoding)):
            missed.append(u.id)
    return {
        "vad": decoding.vad,
        "quiet_peak_dbfs": QUIET_PEAK_DBFS,
        "quiet_missed": missed,
    }


def _decoding_metrics(decoding: DecodingOptions) -> dict[str, Any]:
    """What the test decoding was, for metrics.json and the summary table."""
    lexicon, ngram = decoding.lexicon, decoding.ngram
    return {
        "beam_size": decoding.beam_size,
        "ctc_weight": decoding.ctc_weight,
        "ctc_candidates": decoding.ctc_candidates,
        "confidence_temperature": decoding.confidence_temperature,
        "lexicon_words": len(lexicon) if lexicon is not None else None,
        "ngram_order": ngram.order if ngram is not None else None,
        "ngram_weight": decoding.ngram_weight if ngram is not None else None,
    }


def _example(
    test: list[Utterance], transcripts: list[Transcript | None]
) -> tuple[Utterance, Transcript]:
    """The first held-out test clip of 8-12 words: long enough to show the alignment. Clips
    transcribed as nothing come last: a picture of the alignment needs tokens (a model given
    seconds of training may write nothing for most clips)."""
    pairs = [(u, t) for u, t in zip(test, transcripts, strict=True) if t is not None and u.words]
    pairs.sort(key=lambda pair: not pair[1].words)  # stable: test order otherwise
    return next((p for p in pairs if p[1].words and 8 <= len(p[0].words) <= 12), pairs[0])


def write_example(model: VoxLM, utterance: Utterance, transcript: Transcript, out: Path) -> None:
    """The example's JSON, SRT and alignment picture."""
    from voxlm.formats import write_result

    (out / "example.json").write_text(write_result(transcript, "json"))
    (out / "example.srt").write_text(write_result(transcript, "srt"))
    (out / "example.txt").write_text(f"{utterance.audio_path}\nreference: {utterance.text}\n")
    plot_alignment(model, utterance, transcript, out / "alignment.png")


def plot_alignment(model: VoxLM, utterance: Utterance, transcript: Transcript, path: Path) -> None:
    """Aligner attention over 20 ms frames, the DTW path, and the true word onsets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from voxlm.alignment import dtw, median_filter
    from voxlm.encoder import ENCODER_FRAME_SECONDS

    audio = load_audio(utterance.audio_path)
    tokens = model.tokenizer(transcript.text, add_special_tokens=False).input_ids
    with torch.no_grad():
        features = model.encode(torch.from_numpy(audio)[None], torch.tensor([len(audio)]))
        log_attn = model.aligner_attention(features, [model.prompt()], [tokens])[0].float().numpy()
    n_frames = int(features.mask.sum())
    attn = np.exp(log_attn[:, :n_frames])
    rows, cols = dtw(-median_filter(log_attn[:, :n_frames], DecodingOptions().median_filter_width))
    seconds = n_frames * ENCODER_FRAME_SECONDS
    fig, ax = plt.subplots(figsize=(max(8, seconds * 4), max(4, len(tokens) * 0.18)))
    ax.imshow(
        attn,
        aspect="auto",
        origin="upper",
        cmap="magma",
        extent=(0, seconds, len(tokens) - 0.5, -0.5),
    )
    ax.plot((cols + 0.5) * ENCODER_FRAME_SECONDS, rows, color="cyan", lw=1.2, label="DTW path")
    for i, (word, start, _) in enumerate(utterance.words or ()):
        ax.axvline(start, color="lime", lw=0.8, ls="--", label="true onset" if i == 0 else None)
        ax.text(start, -0.6, word, color="lime", fontsize=7, rotation=45, va="bottom")
    ax.set_yticks(range(len(tokens)))
    ax.set_yticklabels(model.tokenizer.convert_ids_to_tokens(tokens), fontsize=6)
    ax.set_xlabel("seconds")
    ax.set_title(f"{utterance.id}: {transcript.text}", fontsize=9)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary_table(metrics: dict) -> str:
    """The one table printed at the end of the demo."""

    def pct(x):
        return "n/a" if x is None else f"{100 * x:.1f}%"

    def num(x, fmt):
        return "n/a" if x is None else format(x, fmt)

    rows = [
        ("total minutes (synthesis included)", num(metrics["total_minutes"], ".1f")),
        ("training minutes", num(metrics["train_minutes"], ".1f")),
        ("phase 1 steps", _steps(metrics, 1)),
        ("phase 2 steps", _steps(metrics, 2)),
        ("test utterances", str(metrics["n_utterances"])),
        ("WER", pct(metrics["wer"])),
        ("  on the voices heard in training", pct(metrics.get("wer_training_voices"))),
        ("  on the voice never heard", pct(metrics.get("wer_unseen_voice"))),
        ("CER", pct(metrics["cer"])),
        ("word-onset MAE", num(metrics["onset_mae_ms"], ".1f") + " ms"),
        ("onsets within 50 ms", pct(metrics["onset_within_50ms"])),
        ("proportional-split baseline MAE", num(metrics["baseline_onset_mae_ms"], ".1f") + " ms"),
        ("confidence AUROC (right vs wrong words)", num(metrics["confidence_auroc"], ".3f")),
        ("confidence ECE, raw -> calibrated", _ece(metrics)),
        (f"words on non-speech ({NONSPEECH_SECONDS:.0f} s each)", _nonspeech(metrics)),
        ("test clips missed at -30 dBFS peak", _quiet(metrics)),
        ("decoding", _decoding_summary(metrics.get("decoding", {}))),
    ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _steps(metrics: dict, phase: int) -> str:
    """Steps reached, of the planned ones, flagged when the time cap cut the phase short."""
    done, planned = metrics[f"phase{phase}_steps"], metrics.get(f"phase{phase}_planned_steps")
    if planned is None:
        return f"{done} (time budget)"
    short = "  (cut short by the time cap: expect worse results)" if done < planned else ""
    return f"{done} of {planned}{short}"


def _ece(metrics: dict) -> str:
    raw, calibrated = metrics.get("confidence_ece_raw"), metrics.get("confidence_ece")
    if raw is None or calibrated is None:
        return "n/a"
    return f"{raw:.3f} -> {calibrated:.3f}"


def _nonspeech(metrics: dict) -> str:
    results = metrics.get("nonspeech") or []
    if not results:
        return "n/a"
    return ", ".join(f"{r['kind']} {r['n_words']}" for r in results)


def _quiet(metrics: dict) -> str:
    if "quiet_missed" not in metrics:
        return "n/a"
    return f"{len(metrics['quiet_missed'])} of {metrics['n_utterances']} ({metrics['vad']})"


def _decoding_summary(decoding: dict) -> str:
    if not decoding:
        return "n/a"
    words = decoding.get("lexicon_words")
    lexicon = f", lexicon of {words} training words" if words else ", open vocabulary"
    order = decoding.get("ngram_order")
    ngram = f", word {order}-gram weight {decoding['ngram_weight']}" if order else ""
    return f"beam {decoding['beam_size']}, CTC weight {decoding['ctc_weight']}{lexicon}{ngram}"
