"""Runtime for any Hugging Face causal LM (architectures the native runtime does not implement).

Chain drafts only: the cache is transformers' own, cropped for rollback; token trees need the native runtime.
"""

from __future__ import annotations

import torch
from torch import Tensor

from specdec.models.runtime import ForwardOutput, Segment


class HFCache:
    def __init__(self, capacity: int):
        from transformers import DynamicCache
        self.inner = DynamicCache()
        self.capacity = capacity
        self.length = 0

    def rollback(self, n: int) -> None:
        if not 0 <= n <= self.length:
            raise ValueError(f"cannot roll back {n} of {self.length} cached positions")
        self.crop(self.length - n)

    def crop(self, length: int) -> None:
        if length < self.length:
            self.inner.crop(length - self.length)   # negative = drop that many (transformers 4.x and 5.x)
            self.length = length

    def keep(self, start: int, indices: Tensor | list[int]) -> None:
        idx = [int(i) for i in indices]
        if idx != list(range(len(idx))):
            raise NotImplementedError("the transformers adapter keeps only a prefix of new positions "
                                      "(chain drafts); token trees need the native runtime")
        self.crop(start + len(idx))


class HFRuntime:
    supports_tree = False
    supports_batch = False      # forward_batch scores its segments one after another

    def __init__(self, model, *, max_context: int):
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.vocab_size = model.config.vocab_size
        self.num_layers = model.config.num_hidden_layers
        self.max_context = max_context
        import inspect
        params = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"   # renamed in transformers 5

    def new_cache(self, capacity: int, batch: int = 1) -> HFCache:
        return HFCache(capacity)                   # transformers' cache takes its batch size from the inputs

    def new_slots(self, capacity: int, count: int) -> list[HFCache]:
        return [HFCache(capacity) for _ in range(count)]

    @torch.inference_mode()
    def forward(self, input_ids: Tensor, cache: HFCache, *, positions: Tensor | None = None,
                tree_mask: Tensor | None = None, logits: str = "all",
                hidden_layers: tuple[int, ...] = (), layers: tuple[int, ...] | None = None) -> ForwardOutput:
        """input_ids [batch, t] after the cache; see specdec.models.runtime.DecoderRuntime."""
        if layers is not None:
            raise NotImplementedError("running a subset of layers needs the native runtime")
        if tree_mask is not None:
            raise NotImplementedError("the transformers adapter scores chains only; use a native model for trees")
        t = input_ids.shape[1]
        if cache.length + t > cache.capacity:
            raise RuntimeError(f"context overflow: {cache.length + t} positions, cache capacity {cache.capacity}")
        out = self.model(input_ids=input_ids.to(self.device), use_cache=True,
                         output_hidden_states=bool(hidden_layers), **{self._cache_arg: cache.inner})
        cache.length += t
        result = ForwardOutput(logits=None)
        if logits == "all":
            result.logits = out.logits.float()
        elif logits == "last":
            result.logits = out.logits[:, -1:].float()
        for i in hidden_layers:
            # transformers: hidden_states[0] = embeddings, [i + 1] = after layer i, [-1] = final normed
            result.hidden[i] = out.hidden_states[-1 if i == -1 else i + 1]
        return result

    def forward_batch(self, segments: list[Segment], *, hidden_layers: tuple[int, ...] = (),
                      layers: tuple[int, ...] | None = None) -> list[ForwardOutput]:
        """Each segment in its own pass (transformers' caches are one per sequence here): the same results as a
        batched pass, without its speed."""
        return [self.forward(s.input_ids, s.cache, positions=s.positions, tree_mask=s.tree_mask, logits=s.logits,
                             hidden_layers=hidden_layers, layers=layers) for s in segments]
