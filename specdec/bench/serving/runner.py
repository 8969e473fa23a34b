"""The whole measurement of one configuration: find the served model, warm up, then every concurrency level in
turn (closed loop, its own prompts), each reduced to its statistics. Files are written by the caller."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from specdec.bench.serving.client import RequestSettings, first_model
from specdec.bench.serving.load import http_client, run_level
from specdec.bench.serving.prompts import prompts_for_level, round_robin_prompts
from specdec.bench.serving.stats import level_stats
from specdec.errors import ConfigError


@dataclass
class ServeBenchConfig:
    request: RequestSettings        # model "" = the first of GET /v1/models
    concurrency: tuple[int, ...]    # ascending
    requests: int | None = None     # per level; None = max(8, 2 * C)
    warmup: int = 2                 # requests before the first level, not timed
    data: Path | None = None        # question file (default: the shipped Spec-Bench copy)
    label: str = "server"
    progress: bool = True


def requests_at(cfg: ServeBenchConfig, concurrency: int) -> int:
    return cfg.requests if cfg.requests is not None else max(8, 2 * concurrency)


def run_benchmark(cfg: ServeBenchConfig, on_level: Callable[[dict], None] | None = None) -> tuple[str, list[dict]]:
    """(the model name the requests used, one statistics dict per level)."""
    import asyncio
    return asyncio.run(_run(cfg, on_level))


async def _run(cfg: ServeBenchConfig, on_level) -> tuple[str, list[dict]]:
    order = round_robin_prompts(cfg.data)
    levels = []
    async with http_client(max(cfg.concurrency)) as client:
        model = cfg.request.model or await first_model(client, cfg.request.base_url, cfg.request.api_key)
        settings = replace(cfg.request, model=model)
        await _warm_up(client, settings, order, cfg)
        offset = 0
        for c in cfg.concurrency:
            n = requests_at(cfg, c)
            prompts = prompts_for_level(order, n, offset)   # fresh prompts per level while the file lasts
            offset += n
            with _bar(cfg, c, n) as bar:
                run = await run_level(client, settings, prompts, c, bar)
            if not levels and cfg.warmup <= 0:
                _check_answered(run, settings)
            stats = level_stats(run)
            levels.append(stats)
            if on_level:
                on_level(stats)
    return model, levels


async def _warm_up(client, settings: RequestSettings, order: list[str], cfg: ServeBenchConfig) -> None:
    """Untimed requests from the end of the prompt order. A server that answers none of the first requests
    (these, or the first level's without a warm-up) stops the run with one error."""
    if cfg.warmup <= 0:
        return
    prompts = prompts_for_level(order, cfg.warmup, len(order) - cfg.warmup)
    _check_answered(await run_level(client, settings, prompts, min(cfg.warmup, max(cfg.concurrency))), settings)


def _check_answered(run, settings: RequestSettings) -> None:
    if all(r.error == "connection" for r in run.results):
        raise ConfigError(f"no server answers at --url {settings.base_url!r}; accepted: the base URL of a running "
                          f"OpenAI-compatible server on this machine, e.g. http://127.0.0.1:8000/v1")


def _bar(cfg: ServeBenchConfig, concurrency: int, total: int):
    from tqdm import tqdm
    return tqdm(total=total, desc=f"{cfg.label} C={concurrency}", unit="req", disable=not cfg.progress,
                file=sys.stderr, leave=False)
