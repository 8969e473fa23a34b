"""The whole measurement: find each configuration's served model, warm each up, then every concurrency level in
turn (closed loop), each reduced to its statistics. Files are written by the caller.

Several configurations (targets) are measured interleaved: at each level, round after round, every target runs
the round's prompts back to back, the order rotating from round to round. A machine whose speed drifts between
runs then slows every target of a round alike, so the ratio of two targets within a round is a paired
measurement; each round takes fresh prompts, so a server with a prefix cache never sees a prompt twice."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from specdec.bench.serving.client import RequestSettings, first_model
from specdec.bench.serving.load import LevelRun, http_client, run_level
from specdec.bench.serving.prompts import prompts_for_level, round_robin_prompts
from specdec.bench.serving.stats import level_stats
from specdec.errors import ConfigError


@dataclass
class Target:
    label: str
    request: RequestSettings        # model "" = the first of GET /v1/models


@dataclass
class ServeBenchConfig:
    targets: list[Target]
    concurrency: tuple[int, ...]    # ascending
    requests: int | None = None     # per level and round; None = max(8, 2 * C)
    warmup: int = 2                 # requests per target before the first level, not timed
    data: Path | None = None        # question file (default: the shipped Spec-Bench copy)
    rounds: int = 1                 # measurements of each level per target, interleaved across targets
    progress: bool = True


@dataclass
class TargetRun:
    label: str
    model: str                      # the model name its requests used
    levels: list[dict]              # one statistics dict per level (its rounds pooled)


def requests_at(cfg: ServeBenchConfig, concurrency: int) -> int:
    return cfg.requests if cfg.requests is not None else max(8, 2 * concurrency)


def run_benchmark(cfg: ServeBenchConfig, on_level: Callable[[str, dict], None] | None = None) -> list[TargetRun]:
    """One TargetRun per target, in cfg.targets' order; on_level(label, stats) after each level's rounds."""
    import asyncio
    return asyncio.run(_run(cfg, on_level))


def round_order(n: int, r: int) -> list[int]:
    """The targets' order in round r: rotated by r, so each goes first in turn."""
    return [(r + i) % n for i in range(n)]


async def _run(cfg: ServeBenchConfig, on_level) -> list[TargetRun]:
    order = round_robin_prompts(cfg.data)
    async with http_client(max(cfg.concurrency)) as client:
        settings = []
        for t in cfg.targets:
            model = t.request.model or await first_model(client, t.request.base_url, t.request.api_key)
            settings.append(replace(t.request, model=model))
        for s in settings:
            await _warm_up(client, s, order, cfg)
        out = [TargetRun(t.label, s.model, []) for t, s in zip(cfg.targets, settings)]
        offset = 0
        for c in cfg.concurrency:
            n = requests_at(cfg, c)
            runs: list[list[LevelRun]] = [[] for _ in cfg.targets]
            for r in range(cfg.rounds):
                prompts = prompts_for_level(order, n, offset)   # fresh prompts per level and round
                offset += n
                for i in round_order(len(cfg.targets), r):
                    with _bar(cfg.targets[i].label, c, r, cfg, n) as bar:
                        run = await run_level(client, settings[i], prompts, c, bar)
                    if not out[i].levels and not runs[i] and cfg.warmup <= 0:
                        _check_answered(run, settings[i])
                    runs[i].append(run)
            for i, target_run in enumerate(out):
                stats = level_stats(runs[i])
                target_run.levels.append(stats)
                if on_level:
                    on_level(target_run.label, stats)
    return out


async def _warm_up(client, settings: RequestSettings, order: list[str], cfg: ServeBenchConfig) -> None:
    """Untimed requests from the end of the prompt order. A server that answers none of the first requests
    (these, or the first level's without a warm-up) stops the run with one error."""
    if cfg.warmup <= 0:
        return
    prompts = prompts_for_level(order, cfg.warmup, len(order) - cfg.warmup)
    _check_answered(await run_level(client, settings, prompts, min(cfg.warmup, max(cfg.concurrency))), settings)


def _check_answered(run, settings: RequestSettings) -> None:
    if all(r.error == "connection" for r in run.results):
        raise ConfigError(f"no server answers at {settings.base_url!r}; accepted: the base URL of a running "
                          f"OpenAI-compatible server on this machine, e.g. http://127.0.0.1:8000/v1")


def _bar(label: str, concurrency: int, r: int, cfg: ServeBenchConfig, total: int):
    from tqdm import tqdm
    rounds = f" round {r + 1}/{cfg.rounds}" if cfg.rounds > 1 else ""
    return tqdm(total=total, desc=f"{label} C={concurrency}{rounds}", unit="req", disable=not cfg.progress,
                file=sys.stderr, leave=False)
