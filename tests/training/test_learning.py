"""A learning test: a from-scratch model trains on a tiny synthetic corpus, then transcribes it."""

import math

import torch

from voxlm.config import PhaseConfig, get_config
from voxlm.data.manifest import UtteranceDataset, read_manifest
from voxlm.decoding import DecodingOptions
from voxlm.evaluate import evaluate
from voxlm.model import VoxLM
from voxlm.training.trainer import train_phase

STEPS = 240
LOSS_FACTOR = 4.0  # the training loss must fall at least this much
MAX_TRAIN_WER = 0.25


def test_tiny_corpus_is_learned(tmp_path, synth_corpus):
    torch.manual_seed(0)
    train = read_manifest(synth_corpus / "train.jsonl")
    config = get_config("voxlm-tiny").model
    model = VoxLM.from_config(config)
    phase = PhaseConfig(
        epochs=1000,
        batch_size=8,
        learning_rate=3e-3,
        warmup_steps=20,
        max_steps=STEPS,
        ctc_weight=1.0,
        alignment_weight=0.2,
        eval_every=10_000,
        save_every=10_000,
        train_modules=("encoder", "projector", "llm", "aligner", "ctc"),
    )
    result = train_phase(
        model,
        phase,
        "learn",
        UtteranceDataset(train),
        UtteranceDataset(train[:2]),
        tmp_path / "run",
        seed=0,
        log_every=20,
        progress=False,
        dev_limit=0,
    )
    losses = [row["loss"] for row in result.history if not math.isnan(row.get("loss", math.nan))]
    assert losses[0] / losses[-1] > LOSS_FACTOR, losses
    # The whole clips, as trained: Silero would crop each to its speech +- 200 ms, an edge this
    # model, fitted to 16 clips whose silences run 0.1-0.45 s, has never seen (WER 47% vs 0%).
    whole_clips = DecodingOptions(vad="energy")
    report, _ = evaluate(model.eval(), train, batch_size=16, options=whole_clips, progress=False)
    assert report.wer <= MAX_TRAIN_WER, report
