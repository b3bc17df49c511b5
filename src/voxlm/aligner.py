"""The aligner: a cross-attention from transcript tokens to audio encoder frames, and its loss.

Its keys come from the audio encoder output *before* the LLM: LLM hidden states over the audio
positions have been mixed with the text by self-attention, so they no longer say where in time
a sound was. Phase 2 trains it toward each word's frames (``voxlm.labels`` builds the targets);
at inference ``voxlm.timing`` turns its attention into word times.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from voxlm.precision import widen


class Aligner(nn.Module):
    """Scores every (transcript token, audio frame) pair; trained on word timings.

    Shape legend:
        B  batch
        L  transcript tokens
        T  audio encoder frames (20 ms each)
        Dt LLM hidden size (queries come from the LLM's last hidden states at the tokens)
        Da audio encoder width (keys come from the encoder output, before the projector)
        D  aligner width (``d_model``)
    """

    def __init__(self, d_text: int, d_audio: int, d_model: int = 256) -> None:
        super().__init__()
        self.d_model = d_model
        self.query = nn.Sequential(
            nn.Linear(d_text, d_model), nn.GELU(), nn.Linear(d_model, d_model)
        )
        # Encoder outputs differ in scale between families (Whisper vs Wav2Vec2): normalise first.
        self.key = nn.Sequential(nn.LayerNorm(d_audio), nn.Linear(d_audio, d_model))

    def forward(
        self, text_hidden: torch.Tensor, audio_hidden: torch.Tensor, audio_mask: torch.Tensor
    ) -> torch.Tensor:
        """(B, L, Dt), (B, T, Da), (B, T) bool with True = valid -> log attention (B, L, T).

        The result is at least float32 (``widen``), so bf16 training stays stable in the
        softmax. Invalid frames get the dtype's most negative finite value rather than -inf:
        a row whose frames are all masked then becomes uniform instead of NaN.
        """
        q = self.query(text_hidden)  # (B, L, D)
        k = self.key(audio_hidden)  # (B, T, D)
        scores = widen(q @ k.transpose(1, 2)) / math.sqrt(self.d_model)  # (B, L, T)
        scores = scores.masked_fill(~audio_mask[:, None, :], torch.finfo(scores.dtype).min)
        return scores.log_softmax(dim=-1)  # (B, L, T)


def alignment_loss(
    log_attn: torch.Tensor, target: torch.Tensor, token_mask: torch.Tensor
) -> torch.Tensor:
    """Mean over valid tokens of the cross-entropy ``-sum_t target * log_attn``.

    (B, L, T), (B, L, T), (B, L) -> scalar. With no valid token the loss is a zero that stays in
    the graph, so a batch without word timings can still be back-propagated.
    """
    ce = -(target * log_attn).sum(dim=-1)  # (B, L)
    mask = token_mask.to(ce.dtype)
    if not bool(token_mask.any()):
        return (ce * mask).sum()
    return (ce * mask).sum() / mask.sum()
