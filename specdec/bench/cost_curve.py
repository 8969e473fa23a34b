"""The verification cost curve: time to score k new tokens after a fixed context, relative to k = 1.

Speculative decoding pays off only if scoring k draft tokens costs little more than one token: with mean
accepted length tau and relative cost c(k), the best speedup is tau / c(k) (ignoring drafting time). Native
runtime and transformers are timed on the same weights by the one timer (specdec/timing.py): interleaved,
after a warm-up round, each point the minimum over repeats (the least disturbed run on a shared machine).
"""

from __future__ import annotations

import torch

from specdec import timing


def verification_cost(runtime, ks: list[int], context: int = 512, repeats: int = 15, hf_model=None,
                      seed: int = 0) -> dict:
    """{"k": ks, "native_ms": [...], "native_rel": [...], "hf_ms": [...], "hf_rel": [...]} (min over repeats)."""
    g = torch.Generator().manual_seed(seed)
    ctx = torch.randint(0, runtime.vocab_size, (1, context), generator=g)           # [1, context]
    steps = {"native": timing.ForwardStep(runtime, ctx, max(ks))}
    if hf_model is not None:
        from specdec.models.hf_adapter import HFRuntime
        hf = HFRuntime(hf_model, max_context=context + max(ks))
        steps["hf"] = timing.ForwardStep(hf, ctx, max(ks))
    times = timing.time_forwards(steps, ks, repeats=repeats, vocab=runtime.vocab_size, seed=seed + 1)
    out: dict = {"k": ks, "context": context, "repeats": repeats}
    for name in steps:
        best = {k: times[name, k].min for k in ks}
        out[f"{name}_ms"] = [round(best[k] * 1e3, 2) for k in ks]
        out[f"{name}_rel"] = [round(best[k] / best[ks[0]], 3) for k in ks]
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
