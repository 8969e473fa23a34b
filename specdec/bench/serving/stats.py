"""One concurrency level's numbers from its timed requests, pooled over the level's rounds.

- output tokens/s: completion tokens of the successful requests / the level's wall time (summed over rounds);
  requests/s likewise; `rounds`: each round's own output tokens/s.
- TTFT: send -> first content chunk. ITL: gaps between successive content chunks of a request (a speculative
  server may send several tokens in one chunk, so also) TPOT: time per output token after the first,
  (e2e - ttft) / (tokens - 1). E2E: send -> last byte. Each as p50 / p99 in milliseconds.
- errors: failed requests by HTTP status code (or "timeout", "connection", "stream").
- speculative (when the server's usage has a `speculative` block, as specdec serve sends): mean accepted length
  = tokens emitted per target forward pass, bonus/recovered token included (vanilla = 1.00), and draft tokens
  per target forward pass, both pooled over the level's requests."""

from __future__ import annotations

from collections import Counter

import numpy as np

from specdec.bench.serving.client import RequestResult
from specdec.bench.serving.load import LevelRun


def percentiles_ms(values: list[float]) -> dict | None:
    if not values:
        return None
    a = np.asarray(values, dtype=np.float64) * 1000.0
    return {"p50": round(float(np.percentile(a, 50)), 3), "p99": round(float(np.percentile(a, 99)), 3),
            "mean": round(float(a.mean()), 3)}


def level_stats(runs: list[LevelRun]) -> dict:
    """A level's rounds (at least one, all at the same concurrency) as one statistics dict."""
    results = [r for run in runs for r in run.results]
    ok = [r for r in results if r.ok]
    tokens = sum(r.tokens for r in ok)
    wall_s = sum(run.wall_s for run in runs)
    wall = max(wall_s, 1e-9)
    sources = sorted({r.token_source for r in ok})
    return {
        "concurrency": runs[0].concurrency, "requests": len(results), "completed": len(ok),
        "errors": dict(sorted(Counter(r.error for r in results if not r.ok).items())),
        "wall_s": round(wall_s, 4), "output_tokens": tokens,
        "output_tokens_per_s": round(tokens / wall, 3), "requests_per_s": round(len(ok) / wall, 4),
        "rounds": [round(_tokens(run) / max(run.wall_s, 1e-9), 3) for run in runs],
        "token_source": "+".join(sources) or None,
        "ttft_ms": percentiles_ms([r.ttft for r in ok if r.ttft is not None]),
        "itl_ms": percentiles_ms([b - a for r in ok for a, b in zip(r.chunk_times, r.chunk_times[1:])]),
        "tpot_ms": percentiles_ms([_tpot(r) for r in ok if _tpot(r) is not None]),
        "e2e_ms": percentiles_ms([r.e2e for r in ok]),
        "speculative": speculative_stats(ok),
    }


def _tokens(run: LevelRun) -> int:
    return sum(r.tokens for r in run.results if r.ok)


def _tpot(r: RequestResult) -> float | None:
    if r.ttft is None or r.tokens < 2:
        return None
    return (r.e2e - r.ttft) / (r.tokens - 1)


def speculative_stats(results: list[RequestResult]) -> dict | None:
    """Pooled over requests: emitted tokens / passes and draft tokens / passes; None when no server block."""
    spec = [r.speculative for r in results if r.speculative]
    passes = sum(int(s.get("target_forward_passes") or 0) for s in spec)
    if not spec or passes == 0:
        return None
    emitted = sum(float(s.get("mean_accepted_length") or 0.0) * int(s.get("target_forward_passes") or 0)
                  for s in spec)
    return {"mean_accepted_length": round(emitted / passes, 4),
            "draft_tokens_per_pass": round(sum(int(s.get("draft_tokens") or 0) for s in spec) / passes, 4),
            "draft_tokens": sum(int(s.get("draft_tokens") or 0) for s in spec),
            "accepted_tokens": sum(int(s.get("accepted_tokens") or 0) for s in spec),
            "target_forward_passes": passes, "requests": len(spec)}
