"""The decoding rows of ``voxlm.bench.peers``: VoxLM's decoding loop, its word timing and its
batching, each against the plainest way to do the same work.

Decoding is greedy and does ``voxlm bench``'s fixed work (``stages.fixed_work``: EOS never
chosen, the stop rules off), so each window decodes exactly its token budget and a model with
random weights does the work of a trained one; it is the LLM's alone (no CTC vote), as in
``generate``. A quick run uses voxlm-tiny; a full one voxlm-edge at its published shape with
random weights (Whisper tiny's encoder, Qwen2.5-0.5B).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from voxlm.audio import SAMPLE_RATE
from voxlm.bench.peers_report import PeerRow, Target, noise, race
from voxlm.bench.stages import BenchOptions, fixed_work, load_model
from voxlm.decoding import DecodingOptions, generate
from voxlm.model import AudioFeatures, VoxLM
from voxlm.transcribe import Window, decode_windows, token_budget


def decode_rows(quick: bool, device: str) -> list[PeerRow]:
    """Greedy decoding against ``generate``, words against text only, a batch against one by
    one: the decoding rows of ``run_peers``."""
    variant = "voxlm-tiny" if quick else "voxlm-edge"
    model = load_model(BenchOptions(variant=variant, random_weights=True, device=device))
    name = f"{variant}, random weights"
    options = replace(fixed_work(DecodingOptions(), BenchOptions.tokens_per_second), ctc_weight=0.0)
    seconds, repeats = (2.0, 2) if quick else (10.0, 3)
    clip = noise(1, seconds)[0]
    # clips of a quarter to half that length, so that the batch pads as real batches do
    batch = [
        noise(1, s, seed=i)[0]
        for i, s in enumerate(np.linspace(seconds / 4, seconds / 2, 4 if quick else 16))
    ]
    return [
        greedy_row(model, name, clip, options, repeats, device),
        words_row(model, name, clip, options, repeats, device),
        batch_row(model, name, batch, options, 1 if quick else 2, device),
    ]


def _encode(model: VoxLM, clip: np.ndarray) -> AudioFeatures:
    """The audio path of one clip, as a batch of one."""
    audio = torch.from_numpy(clip)[None].to(model.device)  # [1, S]
    return model.encode(audio, torch.tensor([audio.shape[1]], device=model.device))


def greedy_row(
    model: VoxLM,
    name: str,
    clip: np.ndarray,
    options: DecodingOptions,
    repeats: int,
    device: str,
) -> PeerRow:
    """VoxLM's greedy decoding loop (``generate``: layout, prefill, steps, per-token
    probabilities and stop rules) against transformers' ``generate`` of the same LLM from the
    same embedded prompt, to the same token count."""
    features = _encode(model, clip)
    prompts = [model.prompt()]
    n = token_budget(model, len(clip) / SAMPLE_RATE, options)
    seq = model.assemble(features, prompts, [[]])
    decoded = generate(model, features, prompts, [n], options)[0]
    if len(decoded.tokens) != n:
        raise AssertionError(f"VoxLM decoded {len(decoded.tokens)} tokens, expected {n}")
    voxlm_s, baseline_s = race(
        lambda: generate(model, features, prompts, [n], options),
        lambda: model.llm.generate(
            inputs_embeds=seq.embeds,
            attention_mask=seq.attention_mask,
            min_new_tokens=n,
            max_new_tokens=n,
            do_sample=False,
            pad_token_id=model.tokenizer.pad_token_id,
        ),
        repeats,
        device,
    )
    return Target.time_share(1.15).row(
        f"greedy decoding, {n} tokens ({name})",
        "transformers generate, same LLM and prompt",
        voxlm_s,
        baseline_s,
        f"prompt of {seq.embeds.shape[1]} embeddings (audio {len(clip) / SAMPLE_RATE:g} s)",
    )


def words_row(
    model: VoxLM,
    name: str,
    clip: np.ndarray,
    options: DecodingOptions,
    repeats: int,
    device: str,
) -> PeerRow:
    """A window decoded with word times and confidence (``decode_windows``: encoder, decoding,
    aligner pass, DTW, words) against the same decoding of its text alone."""
    seconds = len(clip) / SAMPLE_RATE
    n = token_budget(model, seconds, options)
    windows = [Window(0, 0.0, clip)]
    prompts = [model.prompt()]
    voxlm_s, baseline_s = race(
        lambda: decode_windows(model, windows, None, options),
        lambda: generate(model, _encode(model, clip), prompts, [n], options),
        repeats,
        device,
    )
    return Target.time_share(1.10).row(
        f"words + confidence, {seconds:g} s, {n} tokens ({name})",
        "text only (encoder + decoding), same model",
        voxlm_s,
        baseline_s,
        "the aligner pass, DTW and confidence are the difference",
    )


def batch_row(
    model: VoxLM,
    name: str,
    clips: list[np.ndarray],
    options: DecodingOptions,
    repeats: int,
    device: str,
) -> PeerRow:
    """``decode_windows`` of clips of different lengths as one batch against one at a time."""
    windows = [Window(i, 0.0, clip) for i, clip in enumerate(clips)]
    seconds = sum(len(c) for c in clips) / SAMPLE_RATE
    voxlm_s, baseline_s = race(
        lambda: decode_windows(model, windows, None, replace(options, batch_size=len(clips))),
        lambda: decode_windows(model, windows, None, replace(options, batch_size=1)),
        repeats,
        device,
    )
    on_gpu = torch.device(device).type == "cuda"
    return Target.speed_up(4.0 if on_gpu else 2.0).row(
        f"batch of {len(clips)} ({seconds:.0f} s of audio, {name})",
        "the same clips one at a time",
        voxlm_s,
        baseline_s,
        "words and confidence on; target 2x on a CPU, 4x on a GPU",
    )
