"""EAGLE feature head (Li et al. 2024): drafting in the target's feature space.

Entry p of the head reads the target's feature f_p (its final normed hidden state at position p) and the
embedding of the token that follows, e(x_{p+1}); one decoder layer over all entries so far predicts the next
feature g ≈ f_{p+1}, and the head's own output matrix over the draft vocabulary turns g into draft logits for
x_{p+2}. Deeper draft steps feed the predicted g back in place of the unknown target feature.

With `extra_layers` (EAGLE-3 style fusion, Li et al. 2025), the target's input at a committed position is not
f_p alone but a learned projection of [f_p, the residual streams of those earlier layers at p], each extra
stream RMS-normalised (the residual stream is far larger than the normed feature). The projection starts as
"pass f_p through", so a fused head begins as the plain one. Draft steps still feed g back unprojected.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from specdec.heads.layer import DraftLayer, LayerShape, Rope


class EagleNet(nn.Module):
    def __init__(self, shape: LayerShape, draft_vocab: int, extra_layers: tuple[int, ...] = ()):
        super().__init__()
        self.shape = shape
        self.extra_layers = tuple(int(i) for i in extra_layers)
        if self.extra_layers:
            self.fuse = nn.Linear((1 + len(self.extra_layers)) * shape.hidden, shape.hidden, bias=False)
        self.fc = nn.Linear(2 * shape.hidden, shape.hidden, bias=False)
        self.layer = DraftLayer(shape)
        self.head = nn.Linear(shape.hidden, draft_vocab, bias=False)
        self.rope = Rope(shape)
        self.register_buffer("token_ids", torch.zeros(draft_vocab, dtype=torch.long))  # draft index -> token id

    def forward(self, features: Tensor, embeds: Tensor, positions: Tensor, *, cache=None,
                mask: Tensor | None = None) -> Tensor:
        """features, embeds [batch, t, hidden]; positions [t] -> predicted next features g [batch, t, hidden].
        With a cache (a one-layer KVCache) the entries are appended after cache.length (mask: among themselves)."""
        x = self.fc(torch.cat([embeds, features], dim=-1))
        cos, sin = self.rope(positions)
        g = self.layer(x, cos, sin, cache=cache, mask=mask)
        if cache is not None:
            cache.advance(x.shape[1])
        return g

    def logits(self, g: Tensor) -> Tensor:           # [..., hidden] -> [..., draft vocab]
        return self.head(g)

    def entry(self, embeds: Tensor, features: Tensor) -> tuple[Tensor, Tensor]:
        """(the layer's input, its residual stream): both fc's mix of the embedding and the feature."""
        x = self.fc(torch.cat([embeds, features], dim=-1))
        return x, x

    def committed_input(self, hidden: dict[int, Tensor]) -> Tensor | None:
        """The feature input for the positions the target just committed, from the engine's hidden states (None
        when it handed over none)."""
        final = hidden.get(-1)
        if final is None:
            return None
        extras = torch.stack([hidden[i] for i in self.extra_layers], dim=-2) if self.extra_layers else None
        return self.target_input(final, extras)

    @property
    def feature_layers(self) -> tuple[int, ...]:
        """The target hidden states the head reads: -1 (the final normed feature), then the extra layers."""
        return (-1, *self.extra_layers)

    def target_input(self, final: Tensor, extras: Tensor | None = None) -> Tensor:
        """The feature input for committed positions: final [..., hidden]; extras [..., len(extra_layers),
        hidden], the residual streams of extra_layers (ignored without them)."""
        if not self.extra_layers:
            return final
        e = F.rms_norm(extras.float(), extras.shape[-1:], eps=self.shape.rms_eps).to(final.dtype)
        return self.fuse(torch.cat([final, e.flatten(-2)], dim=-1))

    def init_from_target(self, target, token_ids: Tensor) -> None:
        """Output rows from the target's LM head for the draft vocabulary. The layer keeps its random start with
        small output projections, so the first predicted feature is close to fc's mix of its inputs (the target's
        own last layer would be a poor start: its residual stream is far larger than the normed features)."""
        from specdec.heads.target import lm_head_rows
        with torch.no_grad():
            self.token_ids.copy_(token_ids)
            self.head.weight.copy_(lm_head_rows(target, token_ids))
            self.layer.o.weight.mul_(0.1)
            self.layer.down.weight.mul_(0.1)
            h = self.shape.hidden                       # fc starts as "pass the feature through"
            self.fc.weight[:, h:].copy_(torch.eye(h) + 0.01 * torch.randn(h, h))
            self.fc.weight[:, :h].mul_(0.1)
            if self.extra_layers:                       # fuse starts as "keep the final feature"
                self.fuse.weight.zero_()
                self.fuse.weight[:, :h].copy_(torch.eye(h))
