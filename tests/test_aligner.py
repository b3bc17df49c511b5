"""The aligner network and its loss."""

import math

import torch

from voxlm.aligner import Aligner, alignment_loss
from voxlm.labels import span_targets


def test_aligner_shapes_and_masking():
    torch.manual_seed(0)
    aligner = Aligner(d_text=16, d_audio=12, d_model=8)
    mask = torch.tensor([[True] * 7 + [False] * 3, [False] * 10])
    log_attn = aligner(torch.randn(2, 5, 16), torch.randn(2, 10, 12), mask)
    assert log_attn.shape == (2, 5, 10) and log_attn.dtype == torch.float32
    probs = log_attn.exp()
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 5))
    assert probs[0, :, 7:].max() < 1e-12
    # A fully masked utterance gives a uniform row, not NaN.
    torch.testing.assert_close(log_attn[1], torch.full((5, 10), -math.log(10)))


def test_alignment_loss_value_and_empty_batch():
    log_attn = torch.randn(1, 3, 6).log_softmax(-1)
    target, mask = span_targets([[0, 1, -1]], [[(0, 2), (2, 6)]], n_frames=6)
    expected = -(log_attn[0, 0, :2].mean() + log_attn[0, 1, 2:].mean()) / 2
    torch.testing.assert_close(alignment_loss(log_attn, target, mask), expected)
    empty = torch.zeros(1, 3, dtype=torch.bool)
    param = torch.zeros(1, requires_grad=True)
    loss = alignment_loss(log_attn + param, target, empty)
    loss.backward()
    assert loss.item() == 0.0 and param.grad is not None


def test_aligner_learns_word_spans():
    """Text states that name a position learn to attend to the audio frames carrying it."""
    torch.manual_seed(0)
    n_frames, d = 24, 16
    audio = torch.randn(1, n_frames, d).repeat(4, 1, 1)
    spans = [[(0, 6), (6, 14), (14, 24)], [(0, 10), (10, 12), (12, 24)]] * 2
    text = torch.stack([audio[0, [a for a, _ in s]] for s in spans])  # (B, 3, d)
    target, mask = span_targets([[0, 1, 2]] * 4, spans, n_frames)
    aligner = Aligner(d, d, d_model=32)
    optimizer = torch.optim.Adam(aligner.parameters(), lr=1e-2)
    valid = torch.ones(4, n_frames, dtype=torch.bool)
    losses = []
    for _ in range(60):  # about a second on CPU
        loss = alignment_loss(aligner(text, audio, valid), target, mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # The cross-entropy cannot fall below the targets' entropy; what is left above it is KL.
    entropy = -(target * target.clamp_min(1e-12).log()).sum(-1)[mask].mean().item()
    assert losses[-1] - entropy < 0.2 * (losses[0] - entropy)


def test_aligner_scores_in_float32_for_half_models_and_keep_float64():
    """bf16 would lose the softmax's tails; a float64 model must not drop to float32 (the golden
    recording relies on it to come out the same on every CPU)."""
    torch.manual_seed(0)
    mask = torch.ones(1, 4, dtype=torch.bool)
    for dtype, expected in [(torch.bfloat16, torch.float32), (torch.float64, torch.float64)]:
        aligner = Aligner(d_text=6, d_audio=5, d_model=4).to(dtype)
        log_attn = aligner(
            torch.randn(1, 3, 6, dtype=dtype), torch.randn(1, 4, 5, dtype=dtype), mask
        )
        assert log_attn.dtype == expected, dtype
