"""A closed loop at one concurrency level: C clients share a list of prompts; each sends its next request as
soon as its previous one finished, until the list is used up. The level's wall time runs from the first send
to the last response, so output tokens/s = tokens of successful requests / wall time."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from specdec.bench.serving.client import RequestResult, RequestSettings, send


@dataclass
class LevelRun:
    concurrency: int
    results: list[RequestResult]    # in the order the requests were sent
    wall_s: float


async def run_level(client: httpx.AsyncClient, settings: RequestSettings, prompts: list[str], concurrency: int,
                    progress=None) -> LevelRun:
    """Every prompt sent once by `concurrency` clients in a closed loop; `progress` (a tqdm bar) ticks per
    finished request."""
    results: list[RequestResult | None] = [None] * len(prompts)
    next_index = iter(range(len(prompts)))

    async def worker() -> None:
        for i in next_index:        # shared iterator: each index is taken by exactly one client
            results[i] = await send(client, settings, prompts[i])
            if progress is not None:
                progress.update(1)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(prompts)))))
    wall = time.perf_counter() - start
    return LevelRun(concurrency, [r for r in results if r is not None], wall)


def http_client(concurrency: int) -> httpx.AsyncClient:
    """One connection per client, no proxies from the environment (the server is on this machine)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(None), trust_env=False)
