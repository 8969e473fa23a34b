"""The verification cost curve: time to score k new tokens after a fixed context, relative to k = 1.

Speculative decoding pays off only if scoring k draft tokens costs little more than one token: with mean
accepted length tau and relative cost c(k), the best speedup is tau / c(k) (ignoring drafting time). Native
runtime and transformers are timed on the same weights, interleaved, each point the minimum over repeats
(the least disturbed run on a shared machine).
"""

from __future__ import annotations

import time

import torch


def _native_step(runtime, context: torch.Tensor):
    cache = runtime.new_cache(context.shape[1] + 64)      # room for k <= 64
    runtime.forward(context, cache, logits="none")

    def step(tokens: torch.Tensor) -> None:          # tokens [1, k]
        runtime.forward(tokens, cache)
        cache.rollback(tokens.shape[1])
    return step


def _hf_step(hf_model, context: torch.Tensor):
    from specdec.models.hf_adapter import HFRuntime
    return _native_step(HFRuntime(hf_model, max_context=context.shape[1] + 64), context)


def verification_cost(runtime, ks: list[int], context: int = 512, repeats: int = 15, hf_model=None,
                      seed: int = 0) -> dict:
    """{"k": ks, "native_ms": [...], "native_rel": [...], "hf_ms": [...], "hf_rel": [...]} (min over repeats)."""
    g = torch.Generator().manual_seed(seed)
    ctx = torch.randint(0, runtime.vocab_size, (1, context), generator=g)
    steps = {"native": _native_step(runtime, ctx)}
    if hf_model is not None:
        steps["hf"] = _hf_step(hf_model, ctx)
    best = {name: {k: float("inf") for k in ks} for name in steps}
    for _ in range(repeats + 1):                        # the first round warms up and is discarded
        for k in ks:
            tokens = torch.randint(0, runtime.vocab_size, (1, k), generator=g)
            for name, step in steps.items():
                t0 = time.perf_counter()
                step(tokens)
                best[name][k] = min(best[name][k], time.perf_counter() - t0) if _ > 0 else best[name][k]
    out: dict = {"k": ks, "context": context, "repeats": repeats}
    for name, times in best.items():
        out[f"{name}_ms"] = [round(times[k] * 1e3, 2) for k in ks]
        out[f"{name}_rel"] = [round(times[k] / times[ks[0]], 3) for k in ks]
    return out


def cost_table(result: dict) -> str:
    has_hf = "hf_ms" in result
    head = "| k | native ms | native vs k=1 |" + (" transformers ms | transformers vs k=1 |" if has_hf else "")
    rule = "|---|---|---|" + ("---|---|" if has_hf else "")
    rows = [head, rule]
    for i, k in enumerate(result["k"]):
        row = f"| {k} | {result['native_ms'][i]} | {result['native_rel'][i]:.2f}x |"
        if has_hf:
            row += f" {result['hf_ms'][i]} | {result['hf_rel'][i]:.2f}x |"
        rows.append(row)
    return "\n".join(rows)
