"""Projection weights laid out for fast multiplication by the few rows of a decode or verification step.

On CPU, in float32 and bfloat16, weights are prepacked once for oneDNN (`torch.ops.mkldnn`) and applied with
its linear kernel; elsewhere (CUDA, float16, a build without oneDNN) they are stored transposed ([in, out]) and
applied as x @ W.

Why oneDNN: on a 2-core AMD EPYC (AVX-512, torch 2.13.0+cpu), the 120 projections of SmolLM2-135M (30 layers,
every layer's weights distinct, so they stream from memory as in decoding; min of 15 runs) took, for 1 / 4 / 16
/ 64 rows, 24.0 / 19.8 / 28.5 / 82.7 ms through oneDNN in float32 against 28.9 / 61.8 / 67.9 / 117.5 ms through
MKL's x @ W, and 12.1 / 10.7 / 14.9 / 38.7 ms against 16.6 / 18.8 / 25.6 / 52.9 ms in bfloat16. MKL's
few-row path is what made scoring a draft of 4 tokens cost twice a single token's step there; through oneDNN it
costs no more than one token, which is what speculative decoding and batching live on. (On an Intel Xeon with
AMX, MKL had been 20% faster for one float32 row: 16.8 ms against 21.5 ms; oneDNN was faster from 8 rows.)
"""

from __future__ import annotations

import torch
from torch import Tensor

ONEDNN_DTYPES = (torch.float32, torch.bfloat16)


def onednn_pack(weight: Tensor) -> Tensor | None:
    """weight [out, in] prepacked for oneDNN's linear kernel, or None where that kernel is not available."""
    if weight.device.type != "cpu" or weight.dtype not in ONEDNN_DTYPES:
        return None
    try:
        return torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), None)
    except (RuntimeError, AttributeError):      # a build without oneDNN
        return None


def onednn_linear(rows: Tensor, packed: Tensor, bias: Tensor | None = None) -> Tensor:
    """rows [n, in] @ W.T (+ bias) for W prepacked by onednn_pack; rows in W's dtype."""
    return torch.ops.mkldnn._linear_pointwise(rows, packed, bias, "none", [], "")


class Linear:
    """y = x @ weight.T (+ bias) for weight [out, in], x [..., in] in the weight's dtype."""

    def __init__(self, weight: Tensor, bias: Tensor | None = None):
        self.out_features, self.in_features = weight.shape
        self.bias = bias                                   # [out] or None
        self.packed = onednn_pack(weight)
        self._plain = None if self.packed is not None else weight.t().contiguous()   # [in, out]

    @property
    def weight(self) -> Tensor:
        """The weights as [in, out] (for initialising heads from the target); read back from the packed copy by
        multiplying the identity, which is exact."""
        if self._plain is not None:
            return self._plain
        eye = torch.eye(self.in_features, dtype=self.packed.dtype)
        return onednn_linear(eye, self.packed)

    def decode_tensors(self) -> list[Tensor]:
        """The tensors a one-token step reads (for the bandwidth roofline)."""
        w = self.packed if self.packed is not None else self._plain
        return [w] + ([] if self.bias is None else [self.bias])

    def __call__(self, x: Tensor) -> Tensor:
        if self._plain is not None:
            y = x @ self._plain
            return y if self.bias is None else y + self.bias
        rows = onednn_linear(x.reshape(-1, self.in_features), self.packed, self.bias)
        return rows.reshape(*x.shape[:-1], self.out_features)
