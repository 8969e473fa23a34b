"""4-bit weights for the native runtime on CPU (`--dtype q4`).

Each projection is stored as 4-bit codes in groups of 32 input columns with an affine map per group
(w = low + scale * code, code in 0..15: the layout of GGUF's Q4_1) and multiplied by PyTorch's weight-only int4
kernel, whose activations are bfloat16 and whose accumulation is float32. Quantisation is round-to-nearest per
group. A model that was already 4-bit affine per 32 columns (a Q4_1 or Q4_K GGUF, dequantised on load) is
recovered code for code: the smallest and largest weights of a group are its codes 0 and 15, so the group's
low and scale come back, and every other weight lands on its code. The kernel takes the group scales in
bfloat16, which rounds them (relative error at most 2^-9).

The LM head stays dense and float32 (a Q8_0 GGUF head is exact there), through oneDNN with its weights prepacked
once: float32 logits, so greedy decisions see no bfloat16 ties. Passes of DENSE_ROWS rows or more (prefills)
take a dense path too, on a bfloat16 copy of the 4-bit weights through oneDNN (AMX where the CPU has it):
the 4-bit kernel's cost grows with every row (1.1 s for a 512-token prefill of SmolLM2-135M against 0.6 s in
float32), a dense AMX product's hardly at all.

Why: a decode step of SmolLM2-135M reads 538 MB of float32 weights but 60 MB of 4-bit codes, and on this
machine the projections of one token took 6.3 ms in 4 bits against 20.3 ms in float32 (docs/runtime.md). The
4-bit kernel and oneDNN compute every output row on its own, in the same order whatever the number of rows, and
in q4 the runtime lets each new token attend alone (`LlamaRuntime._attention_by_row`), so scoring k < DENSE_ROWS
tokens in one pass gives bit for bit the logits of k single-token passes (tested): greedy speculative output
equals vanilla output without the rounding caveat of float32 MKL.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from specdec.errors import ConfigError
from specdec.models.linear import onednn_linear, onednn_pack

GROUP = 32        # input columns per quantisation group
DENSE_ROWS = 64   # passes with at least this many rows use the dense bfloat16 copy
_LEVELS = 15      # codes 0..15
_KERNEL_CENTRE = 8   # the int4 kernel computes (code - 8) * scale + zero


def quantize_q4(weight: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Round-to-nearest 4-bit affine quantisation of weight [out, in] per group of 32 input columns.

    -> (codes int32 [out, in] in 0..15, scale [out, in / 32], low [out, in / 32]) with
    weight ~= low + scale * code (exact for weights that were already of that form).
    """
    out, inp = weight.shape
    groups = weight.float().reshape(out, inp // GROUP, GROUP)            # [out, groups, 32]
    low, high = groups.amin(-1), groups.amax(-1)                          # [out, groups]
    scale = (high - low) / _LEVELS
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))          # a constant group: every code 0
    codes = ((groups - low[..., None]) / safe[..., None]).round().clamp(0, _LEVELS)
    return codes.to(torch.int32).reshape(out, inp), scale, low


def dequantize_q4(codes: Tensor, scale: Tensor, low: Tensor) -> Tensor:
    """Inverse of quantize_q4: float32 [out, in]."""
    out, inp = codes.shape
    groups = codes.float().reshape(out, inp // GROUP, GROUP)
    return (low[..., None] + scale[..., None] * groups).reshape(out, inp)


def q4_shape_ok(out_features: int, in_features: int) -> bool:
    """Whether the int4 kernel takes a [out, in] weight."""
    return in_features % GROUP == 0 and out_features % 16 == 0


def check_q4_shape(out_features: int, in_features: int, what: str) -> None:
    if not q4_shape_ok(out_features, in_features):
        raise ConfigError(f"dtype='q4' needs projections whose input size is a multiple of {GROUP} and output "
                          f"size a multiple of 16; {what} is [{out_features}, {in_features}]. Accepted for this "
                          f"model: float32, bfloat16, float16")


class Q4Linear:
    """y = x @ W.T (+ bias) for W [out, in] held as 4-bit codes; x [..., in] of any float dtype, y float32."""

    def __init__(self, weight: Tensor, bias: Tensor | None = None, name: str = "a projection"):
        self.out_features, self.in_features = weight.shape
        check_q4_shape(self.out_features, self.in_features, name)
        codes, scale, low = quantize_q4(weight)
        self.packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes, 2)      # [out, in / 2] uint8
        zero = low + _KERNEL_CENTRE * scale
        self.scales_zeros = torch.stack([scale.t(), zero.t()], dim=-1).to(torch.bfloat16).contiguous()  # [g, out, 2]
        self.bias = None if bias is None else bias.float()
        k_scale, k_zero = (t.t() for t in self.scales_zeros.float().unbind(-1))         # [out, groups] as used
        self.dense = PackedLinear(dequantize_q4(codes, k_scale, k_zero - _KERNEL_CENTRE * k_scale))

    @property
    def weight(self) -> Tensor:
        """The weights the kernel multiplies by, rounded to bfloat16, as float32 [in, out] (the dense Linear's
        layout; for initialising heads from the target)."""
        eye = torch.eye(self.in_features, dtype=torch.bfloat16)                         # row i picks input i
        return torch.ops.aten._weight_int4pack_mm_for_cpu(eye, self.packed, GROUP, self.scales_zeros).float()

    def decode_tensors(self) -> list[Tensor]:
        """The tensors a one-token step reads (for the bandwidth roofline): codes, scales, bias."""
        return [self.packed, self.scales_zeros] + ([] if self.bias is None else [self.bias])

    def __call__(self, x: Tensor, exact: bool = False) -> Tensor:
        """exact=True: the row-exact int4 kernel whatever the number of rows (a batch of decode rows); otherwise
        DENSE_ROWS rows or more (a prefill) take the dense bfloat16 copy."""
        shape = x.shape
        rows = x.reshape(-1, self.in_features).to(torch.bfloat16)                       # [rows, in]
        if rows.shape[0] >= DENSE_ROWS and not exact:
            y = self.dense(rows)
        else:
            y = torch.ops.aten._weight_int4pack_mm_for_cpu(rows, self.packed, GROUP, self.scales_zeros).float()
        y = y.reshape(*shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias


class PackedLinear:
    """y = x @ W.T for W [out, in] prepacked once for oneDNN in `dtype` (bfloat16: AMX / AVX512-BF16); y float32.

    For the LM head's shape (576 inputs) oneDNN gives each output row the same bits whatever the number of rows
    (tested); not for every shape: with 1536 inputs (SmolLM2's down projection) a row alone rounds differently
    from the same row among several, which is why q4 decode rows stay on the int4 kernel. keep=True keeps a reference to the given weight (no
    copy) so `weight` can show it (the tied LM head)."""

    def __init__(self, weight: Tensor, dtype: torch.dtype = torch.bfloat16, keep: bool = False):
        self.out_features, self.in_features = weight.shape
        self.dtype = dtype
        self._source = weight if keep else None
        w = weight.to(dtype).contiguous()                                               # [out, in]
        self.packed = onednn_pack(w)
        self._plain = None if self.packed is not None else w.t()   # a build without oneDNN: plain matmul

    @property
    def weight(self) -> Tensor:
        """The multiplied weights as float32 [in, out] (the dense Linear's layout; for initialising heads)."""
        if self._source is None:
            raise AttributeError("this PackedLinear was built without keep=True")
        return self._source.t().to(self.dtype).float()

    def decode_tensors(self) -> list[Tensor]:
        """The tensors a one-token step reads (for the bandwidth roofline)."""
        return [self.packed if self.packed is not None else self._plain]

    def __call__(self, x: Tensor) -> Tensor:
        shape = x.shape
        rows = x.reshape(-1, self.in_features).to(self.dtype)
        if self.packed is not None:
            y = onednn_linear(rows, self.packed)
        else:
            y = rows @ self._plain
        return y.float().reshape(*shape[:-1], self.out_features)


class Q4Module(nn.Module):
    """Inference-only stand-in for an nn.Linear, computing with its weights in 4 bits (Q4Linear)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        bias = None if linear.bias is None else linear.bias.detach().float()
        self.q4 = Q4Linear(linear.weight.detach().float(), bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.q4(x).to(x.dtype)


def quantize_linears(module: nn.Module) -> int:
    """Replace, in place, every nn.Linear inside `module` whose shape the int4 kernel takes by a Q4Module (the
    others stay dense); return how many were replaced. For trained heads decoding beside a q4 target."""
    done = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear) and q4_shape_ok(child.out_features, child.in_features):
                setattr(parent, name, Q4Module(child))
                done += 1
    return done
