"""Load-aware speculation: how many draft nodes each running request may propose this step, chosen before
anyone drafts, jointly for the batch, so that speculation is never a loss at any load.

A step's cost is one target pass over every decoding request's rows (its root plus its draft) plus the
drafting itself. The pass's cost comes from a `CostSurface`, measured once per machine, runtime and model:
seconds of one pass as a function of the number of requests, the rows each scores and the requests' context
length (attention reads every cached key, so a batch of long contexts makes the pass dearer and a draft row
relatively cheaper). Each request's expected gain from a d-th draft node is its estimated chance of keeping that
node (its own per-depth acceptance so far, `AcceptanceCounter.confidence`, which starts from an uninformed
prior); the rows it costs are the chance that its drafter fills it when allowed (`Sequence.fill_rates`: prompt
lookup without a match proposes nothing and costs no row); its drafting cost is what its drafter has cost it so
far, as a line through its calls: seconds per call whatever it proposes, plus seconds per node
(`Sequence.draft_cost`). `LoadAwareBudget` adds nodes one at a time, always the one that raises the step's
expected tokens per second the most, and keeps the best allocation it passed: a lone request on a memory-bound
machine drafts deep, a full batch on a compute-bound machine drafts little or nothing.

The budgets depend on the load and on measured times, so they differ from run to run; the tokens do not: under
greedy decoding and under the default seeded sampling rule a request's tokens do not depend on its drafts.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import platform
from bisect import bisect_right
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from specdec.models.runtime import Segment
from specdec.sequence import Sequence
from specdec.timing import time_calls

BATCHES = (1, 2, 4, 8, 16)
ROWS = (1, 2, 4, 8, 16)
SURFACE_VERSION = "2"       # what a stored surface holds (2: a second context)


@dataclass(frozen=True)
class CostSurface:
    """Seconds of one pass scoring `batch` requests of `rows` rows each after `context` cached tokens each; with
    `long_seconds`, the same grid after `long_context` tokens, and a pass at another context is interpolated
    linearly between the two (attention's cost grows linearly with the keys it reads)."""

    batches: tuple[int, ...]
    rows: tuple[int, ...]
    seconds: tuple[tuple[float, ...], ...]      # [len(batches)][len(rows)]
    context: int
    key: str = ""                               # what it was measured on (see surface_key)
    long_seconds: tuple[tuple[float, ...], ...] | None = None
    long_context: int = 0

    def __call__(self, batch: int, total_rows: float, context: float | None = None) -> float:
        """Interpolated (linearly in each axis; extrapolated from the last two points beyond the grid)."""
        return self.at_batch(batch, context)(total_rows)

    def at_batch(self, batch: int, context: float | None = None):
        """The pass's seconds at `batch` requests (and mean `context`) as a function of its total rows: the grid
        reduced once, so a planner evaluating many row counts pays one 1-D interpolation each."""
        per_rows = [_interpolate(self.batches, list(col), batch) for col in zip(*self.seconds)]
        if self.long_seconds is not None and context is not None and self.long_context > self.context:
            longer = [_interpolate(self.batches, list(col), batch) for col in zip(*self.long_seconds)]
            f = (context - self.context) / (self.long_context - self.context)
            per_rows = [a + (b - a) * f for a, b in zip(per_rows, longer)]
        scale = max(batch, 1)
        return lambda total_rows: max(0.0, _interpolate(self.rows, per_rows, total_rows / scale))

    def to_json(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_json(data: dict) -> CostSurface:
        long = data.get("long_seconds")
        return CostSurface(tuple(data["batches"]), tuple(data["rows"]),
                           tuple(tuple(r) for r in data["seconds"]), int(data["context"]), data.get("key", ""),
                           None if long is None else tuple(tuple(r) for r in long), int(data.get("long_context", 0)))


def _interpolate(xs: tuple[int, ...] | list[int], ys: list[float], x: float) -> float:
    if len(xs) == 1:
        return ys[0]
    i = min(max(bisect_right(xs, x) - 1, 0), len(xs) - 2)
    x0, x1 = xs[i], xs[i + 1]
    return ys[i] + (ys[i + 1] - ys[i]) * (x - x0) / (x1 - x0)


def _monotone(grid: list[list[float]]) -> tuple[tuple[float, ...], ...]:
    """More rows or more requests never cost less: running maxima along both axes smooth out timing noise."""
    for b, row in enumerate(grid):
        for k in range(len(row)):
            row[k] = max(row[k], row[k - 1] if k else 0.0, grid[b - 1][k] if b else 0.0)
    return tuple(tuple(row) for row in grid)


@torch.inference_mode()
def measure_surface(target, *, batches: tuple[int, ...] = BATCHES, rows: tuple[int, ...] = ROWS,
                    context: int = 256, long_context: int | None = 1024, repeats: int = 3) -> CostSurface:
    """Time one forward_batch pass for each (batch, rows per request) on the grid, each request after `context`
    tokens in its own slot (rolled back after every pass); then again after `long_context` tokens, where the
    model's window allows a longer context than the first."""
    rt = target.runtime
    fit = lambda n: min(n, rt.max_context - max(rows) - 1)  # noqa: E731
    context = fit(context)
    longer = fit(long_context) if long_context else 0
    grid = _measure_grid(target, batches, rows, context, repeats)
    if longer <= context:
        return CostSurface(tuple(batches), tuple(rows), grid, context, surface_key(target))
    return CostSurface(tuple(batches), tuple(rows), grid, context, surface_key(target),
                       _measure_grid(target, batches, rows, longer, repeats), longer)


def _measure_grid(target, batches, rows, context: int, repeats: int) -> tuple[tuple[float, ...], ...]:
    rt = target.runtime
    slots = rt.new_slots(context + max(rows), max(batches))
    g = torch.Generator().manual_seed(0)
    for slot in slots:
        rt.forward(torch.randint(0, rt.vocab_size, (1, context), generator=g), slot, logits="none")
    tokens = torch.randint(0, rt.vocab_size, (1, max(rows)), generator=g)

    def one_pass(b: int, k: int) -> None:
        rt.forward_batch([Segment(tokens[:, :k], slot) for slot in slots[:b]])
        for slot in slots[:b]:
            slot.rollback(k)

    calls = {(b, k): (lambda b=b, k=k: one_pass(b, k)) for b in batches for k in rows}
    timed = time_calls(calls, rt.device, repeats=repeats)
    return _monotone([[timed[(b, k)].median for k in rows] for b in batches])


def surface_key(target) -> str:
    """What a surface depends on: CPU model, threads, torch version, device, dtype (q4 included), the runtime's
    projection kernels, model."""
    rt = target.runtime
    parts = [_cpu_model(), str(torch.get_num_threads()), torch.__version__, str(rt.device), str(rt.dtype),
             str(getattr(rt, "quant", None)), str(getattr(rt, "kernels", "")), str(getattr(rt, "attention", "")),
             target.name, str(rt.num_layers), str(rt.vocab_size), SURFACE_VERSION]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_or_measure(target, **options) -> tuple[CostSurface, bool]:
    """(the surface for this machine and model, whether it came from the cache), measured and stored once in
    $SPECDEC_CACHE/cost/<key>.json."""
    from specdec.models.cache_dir import cache_root
    path = cache_root() / "cost" / f"surface-{surface_key(target)}.json"
    if path.exists():
        try:
            return CostSurface.from_json(json.loads(path.read_text())), True
        except (ValueError, KeyError, TypeError):
            pass                                   # unreadable: measure again
    surface = measure_surface(target, **options)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(surface.to_json()))
    return surface, False


class LoadAwareBudget:
    """The engine's budget policy: draft nodes per decoding request for this step (see the module docstring)."""

    def __init__(self, surface: CostSurface, max_nodes: int = 16):
        self.surface, self.max_nodes = surface, max_nodes
        self.last: list[int] = []                 # the budgets of the last step (for reports and tests)

    def __call__(self, seqs: list[Sequence]) -> list[int]:
        gains = [s.stats.acceptance.confidence(self.max_nodes) for s in seqs]       # [n][max_nodes]
        fills = [s.fill_rates(self.max_nodes) for s in seqs]
        per_call, per_node = zip(*(s.draft_cost() for s in seqs)) if seqs else ((), ())
        context = sum(s.cache.length for s in seqs) / len(seqs) if seqs else None
        self.last = plan_budgets(self.surface, gains, list(per_node), self.max_nodes, fills=fills, context=context,
                                 call_seconds=list(per_call))
        return self.last


def plan_budgets(surface: CostSurface, gains: list[list[float]], node_seconds: list[float], max_nodes: int,
                 *, fills: list[list[float]] | None = None, context: float | None = None,
                 call_seconds: list[float] | None = None) -> list[int]:
    """Budgets k_i maximising the step's expected tokens per second, (n + sum_i sum_{d<=k_i} f_i[d] g_i[d]) /
    (surface(n, n + sum_i sum_{d<=k_i} f_i[d], context) + sum_i ([k_i > 0] call_seconds[i] + sum_{d<=k_i} f_i[d]
    node_seconds[i])), where g is `gains` (the chance a d-th node is kept when proposed), f is `fills` (the chance
    the drafter proposes a d-th node when allowed; 1 when not given) and call_seconds what a drafting call costs
    whatever it proposes (0 when not given).

    Nodes are added one at a time, each time the one with the best gain for its drafting cost (a heap: each
    request's gains never grow with depth; a first node carries its call's cost), up to every request's maximum;
    the allocation with the best rate seen on the way wins (a measured surface has bumps, and a call's cost can
    pay off only over several nodes, so stopping at the first node that does not pay would stop early).
    """
    n = len(gains)
    if n == 0:
        return []
    cost = surface.at_batch(n, context)
    k, best_k = [0] * n, [0] * n
    tokens, rows, drafting = float(n), float(n), 0.0
    best_rate = tokens / max(cost(rows), 1e-12)
    step = 1e-3 * max(cost(rows), 1e-12)                  # prices drafting cost against a row's share of the pass
    limit = [min(max_nodes, len(g)) for g in gains]
    call = call_seconds or [0.0] * n
    heap = [(-gains[i][0] / (step + call[i] + node_seconds[i]), i) for i in range(n) if limit[i] > 0]
    heapq.heapify(heap)
    while heap:
        _, i = heapq.heappop(heap)
        d = k[i]
        fill = fills[i][d] if fills is not None else 1.0
        tokens += fill * gains[i][d]
        rows += fill
        drafting += fill * node_seconds[i] + (call[i] if d == 0 else 0.0)
        k[i] += 1
        if k[i] < limit[i]:
            heapq.heappush(heap, (-gains[i][k[i]] / (step + node_seconds[i]), i))
        rate = tokens / max(cost(rows) + drafting, 1e-12)
        if rate > best_rate:
            best_rate, best_k = rate, list(k)
    return best_k
