"""Medusa heads (Cai et al. 2024): K residual SiLU blocks on the target's last feature.

Head k reads the target's final normed hidden state at position p (from which the target itself predicts
x_{p+1}) and predicts x_{p+1+k}. All heads share one output matrix over the draft vocabulary (initialised from
the target's LM head rows), so K heads cost K small blocks plus K products with a small matrix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ResBlock(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.linear = nn.Linear(hidden, hidden)
        nn.init.zeros_(self.linear.weight)            # starts as the identity: head k = the target's own head
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + F.silu(self.linear(x))


class MedusaNet(nn.Module):
    def __init__(self, hidden: int, num_heads: int, draft_vocab: int, layers_per_head: int = 1):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(*[ResBlock(hidden) for _ in range(layers_per_head)])
                                    for _ in range(num_heads))
        self.head = nn.Linear(hidden, draft_vocab, bias=False)
        self.register_buffer("token_ids", torch.zeros(draft_vocab, dtype=torch.long))

    @property
    def num_heads(self) -> int:
        return len(self.blocks)

    def forward(self, features: Tensor) -> Tensor:
        """features [..., hidden] -> logits [..., heads, draft vocab] (head k at index k-1)."""
        return self.head(torch.stack([block(features) for block in self.blocks], dim=-2))

    def init_from_target(self, target, token_ids: Tensor) -> None:
        from specdec.heads.target import lm_head_rows
        with torch.no_grad():
            self.token_ids.copy_(token_ids)
            self.head.weight.copy_(lm_head_rows(target, token_ids))
