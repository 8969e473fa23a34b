"""Memory-bandwidth roofline for batch-1 decoding: every generated token reads all weights once.

bound tokens/s = bandwidth (bytes/s) / weight bytes read per token. Bytes per token count each decoder layer,
the final norm and the lm_head once (a tied embedding is the lm_head: counted once); the input embedding is
only read one row per token, so an untied embedding table is left out. KV-cache reads are ignored (small
next to the weights at these context lengths), so the bound is slightly optimistic.
"""

from __future__ import annotations

import torch

from specdec import timing


def measure_bandwidth(nbytes: int = 256 << 20, repeats: int = 5, device: str | torch.device = "cpu") -> float:
    """Read bandwidth in bytes/s: best of `repeats` timed sums over a float32 tensor of `nbytes` bytes, after one
    that touches the pages and warms the kernel (the one timer, specdec/timing.py)."""
    x = torch.ones(max(1, nbytes // 4), dtype=torch.float32, device=device)   # [n]
    best = timing.time_calls({"sum": x.sum}, x.device, repeats=repeats)["sum"].min
    return x.numel() * 4 / best


def weight_bytes_per_token(runtime) -> int:
    """Bytes of weights a batch-1 decode step reads (see module docstring)."""
    if hasattr(runtime, "layers"):               # native LlamaRuntime: tensors and Linear projections
        parts = [runtime.final_norm, runtime.lm_head] + [t for layer in runtime.layers for t in layer.values()]
        tensors = [t for p in parts for t in (p.decode_tensors() if hasattr(p, "decode_tensors") else [p])]
    else:                                        # transformers adapter: its nn.Module
        model = runtime.model
        skip = {id(p) for p in model.get_input_embeddings().parameters()}
        skip -= {id(p) for p in (model.get_output_embeddings() or torch.nn.Identity()).parameters()}
        tensors = [p for p in model.parameters() if id(p) not in skip]
    unique = {id(t): t for t in tensors}         # parameters() already dedups; a tied head appears once
    return sum(t.numel() * t.element_size() for t in unique.values())


def roofline(bandwidth: float, bytes_per_token: int, vanilla_tokens_per_s: float | None) -> dict:
    bound = bandwidth / bytes_per_token if bytes_per_token else None
    return {
        "bandwidth_gb_per_s": bandwidth / 1e9, "weight_bytes_per_token": bytes_per_token,
        "bound_tokens_per_s": bound, "vanilla_tokens_per_s": vanilla_tokens_per_s,
        "vanilla_fraction_of_bound": vanilla_tokens_per_s / bound if bound and vanilla_tokens_per_s else None,
    }
