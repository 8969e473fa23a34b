"""A distilled draft model (specdec/heads/distilled.py) decoding through the `draft` method's machinery.

The network is wrapped as a runtime (new_cache / forward with positions and tree masks) whose logits cover the
target's whole vocabulary (-inf outside the draft vocabulary), so chains sampled with draft_probs stay exact and
trees work as for any native draft model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from specdec.drafters import register
from specdec.drafters.cost import fit_costs
from specdec.drafters.draft_model import DraftModelDrafter
from specdec.drafters.trained import load_trained
from specdec.heads.distilled import DistilledNet
from specdec.kv import KVCache
from specdec.models.runtime import ForwardOutput


class DistilledRuntime:
    supports_tree = True

    def __init__(self, net: DistilledNet, embed: Tensor, vocab_size: int):
        self.net, self.embed, self.vocab_size = net.eval(), embed, vocab_size
        self.device, self.dtype = embed.device, embed.dtype
        self.max_context = net.shape.max_context

    def new_cache(self, capacity: int) -> KVCache:
        s = self.net.shape
        return KVCache(len(self.net.layers), s.kv_heads, s.head_dim, capacity, dtype=self.dtype, device=self.device)

    @torch.inference_mode()
    def forward(self, input_ids: Tensor, cache: KVCache, *, positions: Tensor | None = None,
                tree_mask: Tensor | None = None, logits: str = "all", **_) -> ForwardOutput:
        input_ids = input_ids.to(self.device)
        t = input_ids.shape[1]
        positions = (torch.arange(cache.length, cache.length + t, device=self.device) if positions is None
                     else positions.to(self.device))
        mask = None if tree_mask is None else tree_mask.to(self.device)
        small = self.net(self.embed[input_ids], positions, cache=cache, mask=mask)   # [1, t, draft vocab]
        if logits == "last":
            small = small[:, -1:]
        full = small.new_full((*small.shape[:-1], self.vocab_size), float("-inf"))
        full[..., self.net.token_ids] = small
        return ForwardOutput(logits=full)


@dataclass
class _DraftModel:                     # what DraftModelDrafter reads of a loaded model
    name: str
    runtime: DistilledRuntime
    tokenizer: object = None


@register("distilled", "a small draft model distilled from the target (-o drafter=DIR; shipped for smollm2-135m)")
def make_distilled(target, drafter: str | None = None, fit: bool = True, **options) -> DraftModelDrafter:
    net, config, where = load_trained(target, "distilled", drafter)
    rt = target.runtime
    model = _DraftModel(f"distilled:{where}", DistilledRuntime(net, rt.embed, rt.vocab_size))
    defaults = dict(config.get("decode_defaults", {}))
    defaults.update(options)
    return DraftModelDrafter(model, target_vocab=rt.vocab_size, costs=fit_costs(target, fit), **defaults)
