"""Behaviour pinned by a recorded output: transcripts, word times, confidences and losses.

A tiny voxlm-tiny-shaped model with a CTC head (CTC embeddings and positions on, as in the demo)
is built from a fixed seed, transcribes a few clips greedily and with the demo's decoding (beam,
lexicon, word trigram, flatter confidence), and takes one training step. Any change to the
decoding, timing or loss code that changes a result shows up here. After an intended change of
behaviour, record again with ``python tests/test_golden.py`` and say why in the commit.

The model runs in float64: in float32 the 60 training steps ended 1e-4 apart on two Xeon
machines (their kernels round differently), enough to flip near-tied tokens of the greedy
transcripts, so a recording would hold only on the machine that made it. Its softmaxes and losses
stay float64 too (``voxlm.precision.widen``): a float32 cast in them left the losses 4e-5 apart
after the 60 steps on a Xeon and an EPYC machine. All in float64, one thread against two ends
7e-15 apart.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

from voxlm import DecodingOptions, VoxLM, get_config
from voxlm.lexicon import Lexicon
from voxlm.ngram import NGramLM
from voxlm.results import WordTiming

GOLDEN_FILE = Path(__file__).parent / "golden.json"
TOLERANCE = 1e-6
TRAINING_STEPS = 60
SENTENCES = [
    "the cat sat on the mat",
    "a dog ran to the park",
    "she reads a book at night",
    "we eat fish on friday",
]


def _clip(seconds: float, seed: int) -> np.ndarray:
    """A voiced-sounding signal (harmonics of a gliding pitch) that passes the speech check."""
    t = np.arange(int(seconds * 16000)) / 16000
    f0 = 120 + 40 * np.sin(2 * np.pi * (0.5 + 0.2 * seed) * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    rng = np.random.default_rng(seed)
    x = sum(np.sin(k * phase) / k for k in range(1, 10)) * (0.5 + 0.5 * np.sin(3 * t) ** 2)
    return (0.2 * x / np.abs(x).max() + 0.001 * rng.standard_normal(len(t))).astype(np.float32)


def _model() -> VoxLM:
    torch.manual_seed(0)
    base = get_config("voxlm-tiny").model
    config = dataclasses.replace(
        base,
        audio_encoder_config={**base.audio_encoder_config, "d_model": 64, "encoder_ffn_dim": 128},
        llm_config={**base.llm_config, "hidden_size": 64, "intermediate_size": 128},
        aligner_dim=32,
        ctc=True,
        ctc_embeddings=True,
        ctc_positions=True,
    )
    return VoxLM.from_config(config).double().eval()


def _transcripts(model: VoxLM, clips: list[np.ndarray], options: DecodingOptions) -> list[dict]:
    results = model.transcribe(clips, sample_rate=16000, options=options)
    return [r.to_dict() for r in results]


def _batch(seeds: list[int], texts: list[str]) -> dict:
    """A training batch of clips with evenly spread word timings."""
    clips = [_clip(0.9 + 0.1 * len(t.split()), s) for s, t in zip(seeds, texts, strict=True)]
    audio = torch.zeros(len(clips), max(len(c) for c in clips))
    for i, c in enumerate(clips):
        audio[i, : len(c)] = torch.from_numpy(c)
    words = []
    for clip, text in zip(clips, texts, strict=True):
        step = (len(clip) / 16000 - 0.2) / len(text.split())
        words.append(
            [
                WordTiming(w, 0.1 + step * j, 0.1 + step * (j + 0.8))
                for j, w in enumerate(text.split())
            ]
        )
    return {
        "audio": audio,
        "audio_lengths": torch.tensor([len(c) for c in clips]),
        "texts": texts,
        "words": words,
    }


def _train(model: VoxLM, steps: int) -> list[dict[str, float]]:
    """Fit the model to the sentences (each clip stands for one); every loss term, per step."""
    batch = _batch(list(range(len(SENTENCES))), SENTENCES)
    weights = {"ce_weight": 1.0, "ctc_weight": 1.0, "alignment_weight": 0.5, "span_ctc_weight": 1.0}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    losses = []
    for _ in range(steps):
        out = model(batch, **weights)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.losses)
    model.eval()
    return losses


def golden_outputs() -> dict:
    model = _model()
    losses = _train(model, TRAINING_STEPS)
    clips = [_clip(0.9 + 0.1 * len(t.split()), i) for i, t in enumerate(SENTENCES)]
    demo_decoding = DecodingOptions(
        beam_size=4,
        ctc_candidates=8,
        lexicon=Lexicon(SENTENCES),
        ngram=NGramLM(SENTENCES),
        confidence_temperature=2.0,
        batch_size=4,
        vad="energy",
    )
    return {
        "greedy": _transcripts(model, clips, DecodingOptions(vad="energy")),
        "greedy_no_stops": _transcripts(
            model,
            clips,
            DecodingOptions(min_confidence=0, max_repeats=0, ctc_weight=0, vad="energy"),
        ),
        "demo_decoding": _transcripts(model, clips, demo_decoding),
        "losses": losses[:1] + losses[-1:],
    }


def _assert_same(expected, actual, where: str = "") -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and expected.keys() == actual.keys(), where
        for key in expected:
            _assert_same(expected[key], actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(expected) == len(actual), where
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            _assert_same(e, a, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert math.isclose(expected, actual, rel_tol=TOLERANCE, abs_tol=TOLERANCE), (
            f"{where}: expected {expected}, got {actual}"
        )
    else:
        assert expected == actual, f"{where}: expected {expected!r}, got {actual!r}"


def test_outputs_match_the_recorded_golden():
    expected = json.loads(GOLDEN_FILE.read_text())
    actual = json.loads(json.dumps(golden_outputs()))
    _assert_same(expected, actual)


def test_golden_covers_words_and_every_loss():
    """The recording is only a guard if it holds words, times and every loss term."""
    expected = json.loads(GOLDEN_FILE.read_text())
    for name in ("greedy", "greedy_no_stops", "demo_decoding"):
        assert sum(len(r["words"]) for r in expected[name]) >= 6, name
    assert set(expected["losses"][0]) == {"ce", "ctc", "alignment", "span_ctc"}


if __name__ == "__main__":
    GOLDEN_FILE.write_text(json.dumps(golden_outputs(), indent=1) + "\n")
    print(f"wrote {GOLDEN_FILE}", file=sys.stderr)
