"""Decode latency: the time per generated token of vanilla decoding at batch 1 after a fixed context, measured
end to end, against the memory-bandwidth bound of the target's weights.

Each run decodes a seeded random context of `context` tokens and `tokens` more through the path users call
(`SpeculativeDecoder.generate`, no drafter): a step is the engine's whole step, target pass, argmax or sampling,
and the host reading the token. A token's time is the interval between two successive emissions (the callback
runs once the token is a Python int on the host, so the device's work for it has finished); the first emission
also pays the prefill and is reported apart (`first_token_ms`). A run's figure is the median of its intervals;
the result is the median over runs, after one untimed warm-up run. The bound is the weight bytes one step reads
over the measured read bandwidth of the device (specdec/bench/roofline.py).
"""

from __future__ import annotations

import statistics
import time

import torch

from specdec.bench.roofline import measure_bandwidth, weight_bytes_per_token
from specdec.config import SamplingParams
from specdec.errors import ConfigError


def decode_latency(target, *, context: int = 512, tokens: int = 64, runs: int = 5,
                   sampling: SamplingParams | None = None, seed: int = 0,
                   bandwidth_bytes: int = 256 << 20) -> dict:
    """Per-token latency of vanilla decoding (see the module docstring); times in milliseconds.

    bandwidth_bytes: size of the buffer the bandwidth probe reads (0: no probe, no bound).
    """
    from specdec.engine import SpeculativeDecoder

    for name, value, least in (("context", context, 1), ("tokens", tokens, 2), ("runs", runs, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"{name}={value!r} is invalid; accepted: an integer >= {least}")
    window = target.runtime.max_context
    if context + tokens + 1 > window:
        raise ConfigError(f"context {context} + tokens {tokens} exceeds the context window of {window} tokens of "
                          f"{target.name}; accepted: context + tokens < {window}")
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randint(0, target.runtime.vocab_size, (context,), generator=g).tolist()
    decoder = SpeculativeDecoder(target)
    sampling = sampling or SamplingParams()

    def one_run() -> tuple[float, list[float]]:
        stamps: list[float] = []
        start = time.perf_counter()
        decoder.generate(prompt, tokens, sampling, chat=False, learn=False,
                         on_tokens=lambda new: stamps.append(time.perf_counter()))   # one token a step
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        return stamps[0] - start if stamps else float("nan"), gaps

    one_run()                                                       # warm-up: allocation, kernel choice
    first, per_run, intervals = [], [], []
    for _ in range(runs):
        ttft, gaps = one_run()
        first.append(ttft)
        if gaps:
            per_run.append(statistics.median(gaps))
            intervals += gaps
    if not per_run:
        raise ConfigError(f"{target.name} ended every run after its first token (end of sequence), so no decode "
                          f"step was timed; accepted: another --seed")
    ms = statistics.median(per_run) * 1e3
    out = {
        "context": context, "tokens": tokens, "runs": runs, "seed": seed,
        "device": str(target.runtime.device), "temperature": sampling.temperature,
        "ms_per_token": round(ms, 3),
        "ms_per_token_runs": [round(x * 1e3, 3) for x in per_run],
        "ms_per_token_min": round(min(intervals) * 1e3, 3),
        "tokens_timed": len(intervals),
        "first_token_ms": round(statistics.median(first) * 1e3, 2),
        "tokens_per_s": round(1e3 / ms, 2),
    }
    if bandwidth_bytes:
        bandwidth = measure_bandwidth(bandwidth_bytes, device=target.runtime.device)
        weights = weight_bytes_per_token(target.runtime)
        bound = weights / bandwidth * 1e3
        out.update(bandwidth_gb_per_s=round(bandwidth / 1e9, 2), weight_bytes_per_token=weights,
                   bound_ms_per_token=float(f"{bound:.4g}"), times_bound=round(ms / bound, 2))
    return out


def latency_table(result: dict) -> str:
    """The result as a few Markdown lines."""
    rows = ["| measure | value |", "|---|---|",
            f"| ms per token (median of {len(result['ms_per_token_runs'])} runs' medians) | {result['ms_per_token']} |",
            f"| runs | {', '.join(str(x) for x in result['ms_per_token_runs'])} |",
            f"| fastest token, ms | {result['ms_per_token_min']} |",
            f"| tokens per second | {result['tokens_per_s']} |",
            f"| first token (prefill of {result['context']}), ms | {result['first_token_ms']} |"]
    if "bound_ms_per_token" in result:
        rows += [f"| bandwidth bound, ms per token ({result['weight_bytes_per_token'] / 1e6:.0f} MB of weights at "
                 f"{result['bandwidth_gb_per_s']} GB/s measured) | {result['bound_ms_per_token']} |",
                 f"| measured / bound | {result['times_bound']}x |"]
    return "\n".join(rows)
