"""Training logs: a CSV of every logged step, TensorBoard scalars, and a PNG of the curves.

The CSV is the record (``log.csv``: one row per train log or dev evaluation, blank cells where a
row has no value); TensorBoard is optional; ``curves.png`` is redrawn at each evaluation so a
run can be watched with an image viewer.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Any

logger = logging.getLogger("voxlm")

LOG_FILE = "log.csv"
CURVES_FILE = "curves.png"
TENSORBOARD_DIR = "tensorboard"
LOSS_TERMS = ("loss", "ce", "ctc", "alignment")
DEV_METRICS = tuple(f"dev_{t}" for t in LOSS_TERMS) + ("dev_wer",)
TRAIN_ONLY_TERMS = ("span_ctc",)  # training aids, never evaluated on dev
COLUMNS = (
    "step",
    "epoch",
    "lr",
    *LOSS_TERMS,
    *TRAIN_ONLY_TERMS,
    "grad_norm",
    *DEV_METRICS,
    "elapsed_s",
)


class TrainingLog:
    """Rows of numbers, written to ``out_dir`` when ``enabled`` (the main process only).

    On resume the rows logged after the checkpoint's step are dropped, since that stretch is
    trained again.
    """

    def __init__(
        self, out_dir: Path, name: str, resume_step: int | None = None, enabled: bool = True
    ) -> None:
        self.path = out_dir / LOG_FILE
        self.curves_path = out_dir / CURVES_FILE
        self.name = name
        self.enabled = enabled
        self.rows: list[dict[str, float]] = []
        if resume_step is not None and self.path.is_file():
            self.rows = [r for r in _read_rows(self.path) if r["step"] <= resume_step]
        self._writer = _summary_writer(out_dir / TENSORBOARD_DIR) if enabled else None
        if enabled:
            out_dir.mkdir(parents=True, exist_ok=True)
            with self.path.open("w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, COLUMNS)
                writer.writeheader()
                writer.writerows(_cells(r) for r in self.rows)

    def write(self, row: dict[str, Any]) -> None:
        """Append a row (keys among ``COLUMNS``) to the CSV and TensorBoard."""
        unknown = set(row) - set(COLUMNS)
        assert not unknown, f"unknown log columns {sorted(unknown)}"
        row = {k: float(v) for k, v in row.items() if v is not None}
        self.rows.append(row)
        if not self.enabled:
            return
        with self.path.open("a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, COLUMNS).writerow(_cells(row))
        if self._writer is not None:
            step = int(row["step"])
            for key, value in row.items():
                if key not in ("step", "epoch"):
                    self._writer.add_scalar(f"{self.name}/{key}", value, step)
            self._writer.flush()

    def plot(self) -> None:
        """Redraw ``curves.png``: train loss terms vs step, the dev metrics vs minutes."""
        if self.enabled:
            plot_curves(self.rows, self.curves_path, self.name)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _summary_writer(directory: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        logger.info("tensorboard is not installed: logging to CSV only")
        return None
    return SummaryWriter(str(directory))


def _cells(row: dict[str, float]) -> dict[str, str]:
    return {k: ("" if k not in row else f"{row[k]:.6g}") for k in COLUMNS}


def _read_rows(path: Path) -> list[dict[str, float]]:
    with path.open(newline="", encoding="utf-8") as f:
        return [
            {k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)
        ]


def plot_curves(rows: list[dict[str, float]], path: Path, title: str) -> None:
    """Two panels, drawn with matplotlib's object API so no global backend is switched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4), layout="constrained")
    FigureCanvasAgg(figure)
    train, dev = figure.subplots(1, 2)
    values = []
    for term in (*LOSS_TERMS, *TRAIN_ONLY_TERMS):
        points = [(r["step"], r[term]) for r in rows if term in r]
        if points:
            train.plot(*zip(*points, strict=True), label=term)
            values += [v for _, v in points]
    train.set(xlabel="step", ylabel="train loss", title=f"{title}: training")
    if values and min(values) > 0:
        train.set_yscale("log")
    dev_key = "dev_wer" if any("dev_wer" in r for r in rows) else "dev_loss"
    points = [
        (r["elapsed_s"] / 60, r[dev_key])
        for r in rows
        if dev_key in r and math.isfinite(r[dev_key]) and "elapsed_s" in r
    ]
    if points:
        dev.plot(*zip(*points, strict=True), marker="o", label=dev_key)
    dev.set(xlabel="minutes", ylabel=dev_key, title=f"{title}: dev")
    for axes in (train, dev):
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend()
    tmp = path.with_name(path.name + ".tmp.png")
    figure.savefig(tmp, dpi=100)
    tmp.replace(path)
