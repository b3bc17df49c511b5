"""VoxLM against the tools users would pick instead, in the same process, as ratios.

Each row times one stage of VoxLM and its peer on the same work (``peers_report.race``) and
checks that the two agree where they compute the same thing: the log-mel against transformers'
``WhisperFeatureExtractor`` (equal within ``MEL_TOLERANCE``), DTW against openai-whisper's
(identical paths), the encoder on a clip against the same clip padded to Whisper's 30 s window;
the decoding rows live in ``peers_decode``. A disagreement raises: a speed-up over a peer that
computes something else means nothing. Targets are reported, not enforced; the speed of a
shared machine is no test. ``quick`` runs every row at toy size (about 20 s in all).
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import WhisperConfig, WhisperFeatureExtractor

from voxlm.audio import HOP_LENGTH, N_SAMPLES, SAMPLE_RATE, log_mel_spectrogram
from voxlm.bench.peers_decode import decode_rows
from voxlm.bench.peers_report import PeerRow, Target, noise, race
from voxlm.encoder import AudioEncoder
from voxlm.timing import dtw

__all__ = ["PeerRow", "run_peers", "mel_difference", "whisper_dtw_agrees"]

MEL_TOLERANCE = 1e-4
CLIP_SECONDS = 10.0
# The encoder halves of openai/whisper-base and of the test suite's tiny Whisper.
ENCODER_SHAPES = {
    "whisper-base": {
        "d_model": 512,
        "encoder_layers": 6,
        "encoder_attention_heads": 8,
        "encoder_ffn_dim": 2048,
    },
    "tiny": {
        "d_model": 64,
        "encoder_layers": 2,
        "encoder_attention_heads": 4,
        "encoder_ffn_dim": 128,
    },
}


def run_peers(quick: bool, device: str = "cpu") -> list[PeerRow]:
    """Every comparison, in pipeline order: log-mel, DTW, encoder window, then decoding."""
    repeats = 2 if quick else 5
    return [
        log_mel_row(4 if quick else 16, repeats, device),
        dtw_row((40, 300) if quick else (200, 1500), repeats),
        encoder_row("tiny" if quick else "whisper-base", repeats, device),
        *decode_rows(quick, device),
    ]


def log_mel_row(clips: int, repeats: int, device: str) -> PeerRow:
    """A batch of 10 s clips: VoxLM's log-mel against WhisperFeatureExtractor, as Whisper users
    call it (80 mel bins, each clip padded to 30 s, its torch STFT on ``device``)."""
    audio = noise(clips, CLIP_SECONDS)
    extractor = WhisperFeatureExtractor(feature_size=80)
    voxlm_s, baseline_s = race(
        lambda: log_mel_spectrogram(audio, device=device),
        lambda: extractor(
            list(audio), sampling_rate=SAMPLE_RATE, return_tensors="pt", device=device
        ),
        repeats,
        device,
    )
    difference = mel_difference(audio, extractor, device)
    if not difference <= MEL_TOLERANCE:
        raise AssertionError(
            f"log-mel differs from WhisperFeatureExtractor's by up to {difference:.2e} "
            f"(tolerance {MEL_TOLERANCE:g})"
        )
    return Target.speed_up(5.0).row(
        f"log-mel, {clips} x {CLIP_SECONDS:g} s",
        "transformers WhisperFeatureExtractor (pads to 30 s)",
        voxlm_s,
        baseline_s,
        f"max |difference| {difference:.1e} over the frames both compute from the clip alone",
    )


def mel_difference(
    audio: np.ndarray, extractor: WhisperFeatureExtractor, device: str = "cpu"
) -> float:
    """Largest |VoxLM - extractor| over the frames whose window lies inside every clip.

    audio [B, S]. The last frame's window reaches past the clip's end, where VoxLM reflects
    the clip and the extractor sees its zero padding; every earlier frame is the same sum.
    """
    ours = log_mel_spectrogram(audio, device=device).cpu().numpy()  # [B, 80, T]
    theirs = extractor(
        list(audio), sampling_rate=SAMPLE_RATE, return_tensors="np", device=device
    ).input_features  # [B, 80, 3000]
    shared = min(audio.shape[-1] // HOP_LENGTH - 1, theirs.shape[-1])
    return float(np.abs(ours[..., :shared] - theirs[..., :shared]).max())


def dtw_row(shape: tuple[int, int], repeats: int) -> PeerRow:
    """DTW over a (tokens, frames) cost against openai-whisper's ``timing.dtw`` (numba, CPU,
    where VoxLM runs its DTW too); the paths must be identical."""
    what, target = f"DTW, {shape[0]} x {shape[1]} cost", Target.speed_up(1.0)
    try:
        from whisper.timing import dtw as reference
    except ImportError as error:
        return target.skipped(
            what, "openai-whisper timing.dtw", f"openai-whisper not installed ({error})"
        )
    cost = alignment_cost(*shape)
    voxlm_s, baseline_s = race(
        lambda: dtw(cost), lambda: reference(torch.from_numpy(cost)), repeats
    )
    if not whisper_dtw_agrees(cost):
        raise AssertionError(f"DTW path differs from openai-whisper's on a {shape} cost")
    return target.row(what, "openai-whisper timing.dtw", voxlm_s, baseline_s, "identical paths")


def whisper_dtw_agrees(cost: np.ndarray) -> bool:
    """Whether VoxLM's DTW path through ``cost`` (N, M) is openai-whisper's, step for step."""
    from whisper.timing import dtw as reference

    rows, cols = dtw(cost)
    theirs = reference(torch.from_numpy(cost))  # [2, path length]: text, then time indices
    return np.array_equal(rows, theirs[0]) and np.array_equal(cols, theirs[1])


def alignment_cost(tokens: int, frames: int, seed: int = 0) -> np.ndarray:
    """A cost like the aligner's, float64 (tokens, frames): -log of each token's attention
    over frames, peaked along the diagonal with noise, so the path has a shape to follow."""
    rng = np.random.default_rng(seed)
    centre = (np.arange(tokens)[:, None] + 0.5) * frames / tokens  # (tokens, 1)
    width = 2.0 * frames / tokens
    logits = -(((np.arange(frames)[None, :] - centre) / width) ** 2)  # (tokens, frames)
    logits = logits + rng.standard_normal((tokens, frames))
    log_attn = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    return -log_attn


def encoder_row(shape: str, repeats: int, device: str) -> PeerRow:
    """A Whisper encoder (random weights, ``ENCODER_SHAPES[shape]``) on a 10 s clip as VoxLM
    runs it (positions sliced to the clip) against Whisper's own forward on the clip padded
    to 30 s; both sides include the log-mel."""
    config = WhisperConfig(num_mel_bins=80, **ENCODER_SHAPES[shape])
    encoder = AudioEncoder.from_config(config).eval().to(device)
    clip = torch.from_numpy(noise(1, CLIP_SECONDS)).to(device)  # [1, S]
    lengths = torch.tensor([clip.shape[1]], device=device)
    padded = torch.nn.functional.pad(clip, (0, N_SAMPLES - clip.shape[1]))  # [1, 30 s]
    voxlm_s, baseline_s = race(
        lambda: encoder(clip, lengths),
        lambda: encoder.backbone(log_mel_spectrogram(padded)),
        repeats,
        device,
    )
    return Target.time_share(0.40).row(
        f"encoder ({shape} shape), {CLIP_SECONDS:g} s clip",
        "the same encoder on the clip padded to 30 s (Whisper's forward)",
        voxlm_s,
        baseline_s,
        "random weights; log-mel included on both sides",
    )
