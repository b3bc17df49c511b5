"""Projector: stack k encoder frames and map them into the LLM's embedding space."""

from __future__ import annotations

import torch
from torch import nn


class Projector(nn.Module):
    """Encoder frames -> LLM audio embeddings, k frames per embedding.

    Stacking cuts the sequence the LLM attends over by k (4 x 20 ms = one embedding per 80 ms),
    which is where most of the LLM's cost on audio goes; the MLP gives each stacked frame a
    learned map into the LLM's space (as in Ultravox and SALMONN-style adapters).

    Shapes: B batch, T encoder frames, K = stack, N = ceil(T / K) audio embeddings,
    D encoder hidden size, H MLP hidden size, E LLM hidden size.
    """

    def __init__(
        self,
        d_audio: int,
        d_llm: int,
        stack: int = 4,
        hidden: int | None = None,
        activation: str = "gelu",
        zero_output: bool = False,
    ) -> None:
        super().__init__()
        self.stack = stack
        hidden = hidden or d_llm
        self.norm = nn.LayerNorm(d_audio * stack)
        self.activation = activation
        if activation == "swiglu":
            self.gate = nn.Linear(d_audio * stack, hidden)
        elif activation != "gelu":
            raise ValueError(f"projector activation must be 'gelu' or 'swiglu', got {activation!r}")
        self.up = nn.Linear(d_audio * stack, hidden)
        self.down = nn.Linear(hidden, d_llm)
        if zero_output:  # a pretrained LLM first reads only what CTC hears (ctc_embeddings)
            nn.init.zeros_(self.down.weight)
            nn.init.zeros_(self.down.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, D], mask [B, T] (True = valid) -> embeddings [B, N, E], mask [B, N]."""
        b, t, d = x.shape
        pad = (-t) % self.stack
        x = nn.functional.pad(x * mask[..., None], (0, 0, 0, pad))  # [B, N*K, D]
        x = x.reshape(b, -1, d * self.stack)  # [B, N, K*D]
        x = self.norm(x)
        if self.activation == "swiglu":
            h = nn.functional.silu(self.gate(x)) * self.up(x)  # [B, N, H]
        else:
            h = nn.functional.gelu(self.up(x))  # [B, N, H]
        n_valid = (mask.sum(1) + self.stack - 1) // self.stack  # [B]
        out_mask = torch.arange(x.shape[1], device=x.device)[None, :] < n_valid[:, None]  # [B, N]
        return self.down(h), out_mask
