"""A small distilled draft model (DistillSpec-style, Zhou et al. 2024): a few Llama layers of the target's width
over the target's own (frozen, not stored) token embedding, with an output matrix over the draft vocabulary.

Trained to match the target's next-token distributions; decodes like any draft model with its own KV cache.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from specdec.heads.layer import DraftLayer, LayerShape, RMSNorm, Rope


class DistilledNet(nn.Module):
    def __init__(self, shape: LayerShape, num_layers: int, draft_vocab: int):
        super().__init__()
        self.shape = shape
        self.layers = nn.ModuleList(DraftLayer(shape) for _ in range(num_layers))
        self.norm = RMSNorm(shape.hidden, shape.rms_eps)
        self.head = nn.Linear(shape.hidden, draft_vocab, bias=False)
        self.rope = Rope(shape)
        self.register_buffer("token_ids", torch.zeros(draft_vocab, dtype=torch.long))

    def forward(self, embeds: Tensor, positions: Tensor, *, cache=None, mask: Tensor | None = None) -> Tensor:
        """embeds [batch, t, hidden] (the target's embedding of the tokens) -> logits [batch, t, draft vocab]."""
        return self.head(self.trunk(embeds, positions, cache=cache, mask=mask))

    def trunk(self, embeds: Tensor, positions: Tensor, *, cache=None, mask: Tensor | None = None) -> Tensor:
        """The final normed hidden state [batch, t, hidden] (apply `head` to get logits)."""
        cos, sin = self.rope(positions)
        x = embeds
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, cache=cache, index=i, mask=mask)
        if cache is not None:
            cache.advance(x.shape[1])
        return self.norm(x)

    def init_from_target(self, target, token_ids: Tensor, layer_ids: list[int]) -> None:
        """Output rows and final norm from the target; layer j from target layer layer_ids[j]."""
        from specdec.heads.target import final_norm, layer_state, lm_head_rows
        with torch.no_grad():
            self.token_ids.copy_(token_ids)
            self.head.weight.copy_(lm_head_rows(target, token_ids))
            self.norm.weight.copy_(final_norm(target))
            for layer, i in zip(self.layers, layer_ids):
                layer.init_from(layer_state(target, i))
