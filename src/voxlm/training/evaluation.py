"""Dev evaluation during training: loss terms, WER, and the number that picks the best model.

Runs on the main process only; the trainer calls it every ``eval_every`` steps and at the end.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from torch.utils.data import Dataset

from voxlm.audio import SAMPLE_RATE
from voxlm.config import PhaseConfig
from voxlm.data.batching import collate
from voxlm.decoding import DecodingOptions
from voxlm.evaluate import word_error_rate
from voxlm.model import VoxLM

# Early models are measured, not silenced: no confidence floor, no speech gate.
DEV_DECODING = DecodingOptions(min_confidence=0.0, no_speech_check=False)


def selection_metric(phase: PhaseConfig) -> str:
    """The dev number that picks the best model: lower is better."""
    if phase.ce_weight > 0:
        return "dev_wer"
    return "dev_alignment" if phase.alignment_weight > 0 else "dev_loss"


def load_items(dataset: Dataset, limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` readable utterances, shortest first (dev batches pad little)."""
    items = [dataset[i] for i in range(min(limit, len(dataset)))]
    return sorted((x for x in items if x is not None), key=lambda x: len(x["audio"]))


@torch.no_grad()
def dev_metrics(
    model: VoxLM, phase: PhaseConfig, items: list[dict[str, Any]], transcribes: bool = True
) -> dict[str, float]:
    """Dev loss terms (the phase's weights) and, when the phase trains transcription, dev WER.

    ``transcribes=False`` leaves out the WER, as during CTC-only steps, when the LLM has not
    been trained yet and generating would only cost time.
    """
    model.eval()
    totals: dict[str, float] = defaultdict(float)
    for start in range(0, len(items), phase.batch_size):
        batch = collate(items[start : start + phase.batch_size])
        out = model(
            batch,
            ce_weight=phase.ce_weight,
            ctc_weight=phase.ctc_weight,
            alignment_weight=phase.alignment_weight,
        )
        n = len(batch["texts"])
        totals["loss"] += float(out.loss) * n
        for term, value in out.losses.items():
            totals[term] += value * n
    metrics = {f"dev_{k}": v / len(items) for k, v in totals.items()}
    if phase.ce_weight > 0 and transcribes:
        metrics["dev_wer"] = dev_wer(model, items)
    return metrics


def dev_wer(model: VoxLM, items: list[dict[str, Any]]) -> float:
    """Corpus word error rate of greedy transcription (normalised as in ``voxlm.evaluate``)."""
    transcripts = model.transcribe(
        [x["audio"] for x in items], sample_rate=SAMPLE_RATE, options=DEV_DECODING
    )
    return word_error_rate([x["text"] for x in items], [t.text for t in transcripts])


def format_metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()))
