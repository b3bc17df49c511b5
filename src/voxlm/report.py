"""The evaluation report a person reads: ``metrics.json``, ``report.md`` with its plots, a table.

``voxlm.evaluate`` measures; this module only writes what it measured. ``report.md`` shows each
group of metrics with a one-line definition (the full ones are in docs/USAGE.md, "Evaluation
report"), links its PNG plots, which sit next to it, and says which text normaliser was used and
how long the non-speech signals were, since both change the numbers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from voxlm.calibration import plot_reliability
from voxlm.evaluate import WITHIN_MS, EvaluationOptions, EvaluationReport

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
RELIABILITY_PLOT = "reliability.png"
SPEAKER_PLOT = "wer_by_speaker.png"
_WITHIN = "/".join(str(ms) for ms in WITHIN_MS)  # "20/50/100"
_NORMALIZER_TEXT = {
    "english": "lowercase, punctuation removed, numbers written in words "
    '("42" = "forty two", "2nd" = "second", "%" = "percent"), as whisper\'s English normaliser',
    "plain": "lowercase and punctuation removed; numbers left as written",
}


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, fmt: str = ".3f", unit: str = "") -> str:
    return "n/a" if x is None else format(x, fmt) + unit


def speaker_order(speakers: Sequence[str]) -> list[str]:
    """Speaker ids in natural order: "2" before "12", "spk2" before "spk10"."""
    return sorted(
        speakers, key=lambda k: [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", k)]
    )


def stop_shares(report: EvaluationReport) -> dict[str, float]:
    """The share of utterances each stop rule ended, largest first."""
    total = sum(report.stop_reasons.values())
    shares = {k: v / total for k, v in report.stop_reasons.items()} if total else {}
    return dict(sorted(shares.items(), key=lambda kv: (-kv[1], kv[0])))


def metrics_json(report: EvaluationReport, run: dict[str, Any] | None = None) -> str:
    """The report as JSON, with what was run (model, data, decoding) under ``run``."""
    return json.dumps({"run": run or {}, **report.to_dict()}, indent=2) + "\n"


def summary_table(report: EvaluationReport) -> str:
    """The table ``voxlm evaluate`` prints: one line per metric group."""
    r = report
    worst = max(r.wer_by_speaker.items(), key=lambda kv: kv[1], default=None)
    rows = [
        ("utterances", f"{r.n_utterances} ({r.n_failed} failed), {r.audio_seconds:.1f} s of audio"),
        (f"WER / CER ({r.normalizer})", f"{_pct(r.wer)} / {_pct(r.cer)}"),
        ("worst speaker", "n/a" if worst is None else f"{worst[0]}: {_pct(worst[1])}"),
        ("timed words", str(r.n_timed_words)),
        (
            "onset MAE / median",
            f"{_num(r.onset_mae_ms, '.1f')} / {_num(r.onset_median_ms, '.1f')} ms",
        ),
        (
            "offset MAE / median",
            f"{_num(r.offset_mae_ms, '.1f')} / {_num(r.offset_median_ms, '.1f')} ms",
        ),
        (f"onsets within {_WITHIN} ms", _within(r, "onset")),
        (f"offsets within {_WITHIN} ms", _within(r, "offset")),
        (f"word segment F1 @ {r.segment_collar_ms:g} ms", _segments(r)),
        ("confidence AUROC / ECE / Brier", _confidence(r)),
        ("non-speech words per minute", _nonspeech_line(r)),
        ("stopped by", ", ".join(f"{k} {_pct(v)}" for k, v in stop_shares(r).items()) or "n/a"),
        ("RTFx (audio s per decoding s)", _num(r.rtfx, ".1f")),
        (
            "peak memory",
            f"RSS {_num(r.peak_rss_mb, '.0f', ' MiB')}, CUDA {_num(r.cuda_peak_mb, '.0f', ' MiB')}",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _within(r: EvaluationReport, name: str) -> str:
    return " / ".join(_pct(getattr(r, f"{name}_within_{ms}ms")) for ms in WITHIN_MS)


def _segments(r: EvaluationReport) -> str:
    return (
        f"{_num(r.segment_f1)} (precision {_num(r.segment_precision)}, "
        f"recall {_num(r.segment_recall)})"
    )


def _confidence(r: EvaluationReport) -> str:
    return " / ".join(_num(x) for x in (r.confidence_auroc, r.confidence_ece, r.confidence_brier))


def _nonspeech_line(r: EvaluationReport) -> str:
    if not r.nonspeech:
        return "not measured"
    rates = ", ".join(f"{n.kind} {n.words_per_minute:.1f}" for n in r.nonspeech)
    return f"{rates} ({r.nonspeech[0].seconds:g} s each)"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A markdown table; a "|" inside a cell is escaped so it cannot split the cell."""
    cells = [[str(c).replace("|", "\\|") for c in row] for row in rows]
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in cells),
    ]


# ---- report.md ----------------------------------------------------------------------------------
def _text_section(r: EvaluationReport, speaker_plot: str | None) -> list[str]:
    lines = [
        "## Text",
        "",
        f"Normaliser `{r.normalizer}`: {_NORMALIZER_TEXT[r.normalizer]}; applied to reference and "
        "hypothesis alike. WER = (substitutions + deletions + insertions) / reference words over "
        "the corpus; CER the same over characters, spaces included.",
        "",
        *_table(
            ("utterances", "failed files", "WER", "CER"),
            [(str(r.n_utterances), str(r.n_failed), _pct(r.wer), _pct(r.cer))],
        ),
    ]
    if r.wer_by_speaker:
        rows = [(k, _pct(r.wer_by_speaker[k])) for k in speaker_order(list(r.wer_by_speaker))]
        lines += ["", "### WER by speaker", "", *_table(("speaker", "WER"), rows)]
        if speaker_plot:
            lines += ["", f"![WER by speaker]({speaker_plot})"]
    lines += ["", f"### The {len(r.worst_utterances)} utterances with the highest WER", ""]
    if not r.worst_utterances:
        return [*lines, "No utterance has an error."]
    rows = [
        (
            u.id,
            u.speaker or "-",
            _pct(u.wer),
            f"{u.errors}/{u.n_ref_words}",
            u.reference,
            u.hypothesis,
        )
        for u in r.worst_utterances
    ]
    return lines + _table(("id", "speaker", "WER", "errors", "reference", "hypothesis"), rows)


def _timing_section(r: EvaluationReport) -> list[str]:
    lines = ["## Word timing", ""]
    if r.n_timed_words == 0 and r.segment_f1 is None:
        return [*lines, "No utterance has reference word times, or no word was recognised."]
    lines += [
        f"Over the {r.n_timed_words} correctly recognised words of utterances with reference word "
        "times. Error = hypothesis time - reference time; MAE is the mean of its size, bias its "
        "mean with sign (positive: late).",
        "",
    ]
    rows = [
        (label, *(_num(getattr(r, f"{edge}_{key}"), ".1f", " ms") for edge in ("onset", "offset")))
        for label, key in (("MAE", "mae_ms"), ("median", "median_ms"), ("bias", "bias_ms"))
    ]
    rows += [
        (
            f"within {ms} ms",
            *(_pct(getattr(r, f"{edge}_within_{ms}ms")) for edge in ("onset", "offset")),
        )
        for ms in WITHIN_MS
    ]
    lines += _table(("", "word start", "word end"), rows)
    lines += [
        "",
        f"Baseline (the audio split among the words by their length): onset MAE "
        f"{_num(r.baseline_onset_mae_ms, '.1f', ' ms')}.",
        "",
        f"Word segments at a {r.segment_collar_ms:g} ms collar: a hypothesis word is right when it "
        "has the text of a reference word and both its start and end are within the collar of "
        f"that word's (one-to-one). Precision {_num(r.segment_precision)}, recall "
        f"{_num(r.segment_recall)}, **F1 {_num(r.segment_f1)}**.",
    ]
    return lines


def _confidence_section(r: EvaluationReport, reliability_plot: str | None) -> list[str]:
    lines = [
        "## Confidence",
        "",
        f"Over {r.n_scored_words} hypothesis words, each right when the alignment with the "
        "reference matches it. AUROC: the chance that a right word has a higher confidence than "
        "a wrong one (0.5 is chance). ECE: the mean gap between confidence and the share of "
        f"right words over {len(r.reliability)} equal-count bins, weighted by their words (0 is "
        "calibrated). Brier: the mean of (confidence - right)², right = 1, wrong = 0.",
        "",
        *_table(
            (
                "AUROC",
                "ECE",
                "Brier",
                "mean confidence, right words",
                "mean confidence, wrong words",
            ),
            [
                (
                    _num(r.confidence_auroc),
                    _num(r.confidence_ece),
                    _num(r.confidence_brier),
                    _num(r.mean_confidence_correct),
                    _num(r.mean_confidence_wrong),
                )
            ],
        ),
    ]
    if reliability_plot:
        lines += ["", f"![Reliability diagram]({reliability_plot})"]
    return lines


def _hallucination_section(r: EvaluationReport) -> list[str]:
    lines = ["## Hallucination", ""]
    if r.nonspeech:
        seconds, default = r.nonspeech[0].seconds, EvaluationOptions().nonspeech_seconds
        shorter = (
            f" (shorter than the {default:g} s default: a rate from less audio)"
            if seconds < default
            else ""
        )
        lines += [
            f"Words written on {seconds:g} s of each generated non-speech signal{shorter}; the "
            "right number is 0. Silence is digital zeros; hum 50 Hz and harmonics at -40 dBFS; "
            "white and pink noise at -30 dBFS; music triads over a 120 bpm beat at -20 dBFS.",
            "",
            *_table(
                ("signal", "words", "words per minute", "stop reason", "text"),
                [
                    (
                        n.kind,
                        str(n.n_words),
                        f"{n.words_per_minute:.1f}",
                        str(n.stop_reason),
                        _clip(n.text),
                    )
                    for n in r.nonspeech
                ],
            ),
            "",
        ]
    else:
        lines += ["The non-speech set was not run (`--nonspeech-seconds 0`).", ""]
    rows = [(k, str(r.stop_reasons[k]), _pct(v)) for k, v in stop_shares(r).items()]
    lines += ["Which rule ended each utterance's decoding:", ""]
    return lines + _table(("stop reason", "utterances", "share"), rows)


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _speed_section(r: EvaluationReport) -> list[str]:
    return [
        "## Speed and memory",
        "",
        "RTFx: seconds of audio transcribed per second of decoding (reading files not counted). "
        "Peak RSS: the process's peak resident memory, model loading included; CUDA peak: the "
        "most GPU memory allocated while decoding.",
        "",
        *_table(
            ("audio", "decoding", "RTFx", "peak RSS", "CUDA peak"),
            [
                (
                    f"{r.audio_seconds:.1f} s",
                    _num(r.decode_seconds, ".1f", " s"),
                    _num(r.rtfx, ".1f"),
                    _num(r.peak_rss_mb, ".0f", " MiB"),
                    _num(r.cuda_peak_mb, ".0f", " MiB"),
                )
            ],
        ),
    ]


def report_markdown(
    r: EvaluationReport, run: dict[str, Any], plots: dict[str, str] | None = None
) -> str:
    """``report.md``: what was run, then text, timing, confidence, hallucination, speed.

    ``plots`` maps RELIABILITY_PLOT / SPEAKER_PLOT to the file names to link, where drawn.
    """
    plots = plots or {}
    header = ["# Evaluation report", ""]
    header += [f"- {key}: `{value}`" for key, value in run.items() if key != "decoding"]
    if "decoding" in run:
        header.append("- decoding: " + ", ".join(f"{k}={v}" for k, v in run["decoding"].items()))
    lines = header + ["", 'Definitions: docs/USAGE.md, "Evaluation report".']
    for section in (
        _text_section(r, plots.get(SPEAKER_PLOT)),
        _timing_section(r),
        _confidence_section(r, plots.get(RELIABILITY_PLOT)),
        _hallucination_section(r),
        _speed_section(r),
    ):
        lines += ["", *section]
    return "\n".join(lines) + "\n"


# ---- plots and files ----------------------------------------------------------------------------
def plot_speakers(wer_by_speaker: dict[str, float], path: Path) -> None:
    """One bar per speaker: a corpus WER hides the voice the model cannot follow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = speaker_order(list(wer_by_speaker))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.4 * len(names) + 1.5), 3.2))
    ax.bar(range(len(names)), [100 * wer_by_speaker[n] for n in names], color="tab:blue")
    ax.set_xticks(range(len(names)), names, rotation=90 if len(names) > 12 else 0, fontsize=7)
    ax.set(xlabel="speaker", ylabel="WER (%)", title="WER by speaker")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    report: EvaluationReport, out_dir: str | Path, run: dict[str, Any] | None = None
) -> Path:
    """Write metrics.json, report.md and its plots into ``out_dir``; returns report.md's path.

    The reliability diagram is drawn where any word was scored, the speaker plot where the
    utterances name two speakers or more.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = run or {}
    (out / METRICS_FILE).write_text(metrics_json(report, run))
    plots: dict[str, str] = {}
    if report.reliability:
        title = f"Word confidence, ECE {_num(report.confidence_ece)}"
        plot_reliability(report.reliability, out / RELIABILITY_PLOT, title)
        plots[RELIABILITY_PLOT] = RELIABILITY_PLOT
    if len(report.wer_by_speaker) > 1:
        plot_speakers(report.wer_by_speaker, out / SPEAKER_PLOT)
        plots[SPEAKER_PLOT] = SPEAKER_PLOT
    path = out / REPORT_FILE
    path.write_text(report_markdown(report, run, plots), encoding="utf-8")
    return path
