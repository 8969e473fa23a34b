"""The bridge between the HTTP handlers (asyncio) and the engine (one thread of its own).

The engine is not thread-safe, so one background thread owns it and does everything to it: it drains an inbox
of adds and aborts, steps while there is work and sleeps on a condition when there is none. What a step
produces (each request's new token ids, then its result) goes back to that request's asyncio.Queue through
`loop.call_soon_threadsafe`. An exception inside a step fails the requests in the engine (the handlers answer
500) and the runner goes on with a fresh engine.

Tensor work belongs to one thread. PyTorch's CPU parallelism is OpenMP, which keeps a pool of worker threads for
each thread that starts parallel work; with two pools on a 2-core machine each pool's workers stop spinning and
sleep between operations, and a decode step of SmolLM2-135M ran at 13.4 instead of 22.4 tokens/s when the model
had been loaded on the main thread and was run on the engine's. `specdec serve` therefore loads on a passing
thread (`on_passing_thread`), whose pool goes with it, before the engine's thread starts.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from specdec.engine import Budget, Engine, GenerationResult, Request, StepReport

log = logging.getLogger("specdec.server")


@dataclass
class Tokens:
    ids: list[int]              # token ids the request emitted in one step


@dataclass
class Finished:
    result: GenerationResult


@dataclass
class Failed:
    """The engine failed while this request was in it (an internal error)."""


Event = Tokens | Finished | Failed


class QueueFull(Exception):
    """Every slot is taken and the waiting queue is full."""


class NotAccepting(Exception):
    """The runner is starting up or draining."""


class Observer(Protocol):
    """What the runner reports as it goes (metrics); called on the runner's thread."""

    def step(self, report: StepReport) -> None: ...
    def first_token(self, seconds: float) -> None: ...
    def inter_token(self, seconds: float) -> None: ...
    def finished(self, result: GenerationResult, seconds: float) -> None: ...


@dataclass
class RunnerStats:
    running: int
    waiting: int
    free_slots: int


class _Sink:
    """Where one request's events go, and its timing."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop, self.queue = loop, asyncio.Queue()
        self.submitted = time.perf_counter()
        self.last: float | None = None

    def put(self, event: Event) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)
        except RuntimeError:                  # the handler's loop is gone: nobody is listening
            pass


class Handle:
    """One submitted request: iterate its events; close() aborts it unless it has already ended."""

    def __init__(self, runner: EngineRunner, request_id: str, sink: _Sink):
        self.runner, self.request_id, self._sink, self.done = runner, request_id, sink, False

    async def events(self) -> AsyncIterator[Event]:
        while not self.done:
            event = await self._sink.queue.get()
            self.done = not isinstance(event, Tokens)
            yield event

    def close(self) -> None:
        if not self.done:
            self.done = True
            self.runner.abort(self.request_id)


def on_passing_thread(work: Callable[[], object]) -> object:
    """work() on a thread that ends when it returns (its OpenMP pool ends with it); its result, or its exception
    raised here."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["result"] = work()
        except BaseException as e:            # handed to the caller's thread
            box["error"] = e

    thread = threading.Thread(target=run, name="specdec-load")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


class EngineRunner:
    def __init__(self, target, engine_options: dict, *, max_queue: int = 256, observer: Observer | None = None,
                 budget: Callable[[], Budget] | None = None):
        """budget: builds the engine's draft-budget policy in the engine thread before the server is ready (it
        may measure the cost surface: /health says 503 meanwhile)."""
        self.target, self.engine_options, self.observer = target, dict(engine_options), observer
        self._make_budget = budget
        self.engine = self._new_engine()
        self.capacity = self.engine.max_num_seqs + max_queue      # requests held at once, running or waiting
        self._cond = threading.Condition()
        self._inbox: deque[tuple[str, object]] = deque()
        self._sinks: dict[str, _Sink] = {}
        self._running, self._free = 0, self.engine.max_num_seqs
        self._thread: threading.Thread | None = None
        self._stop = False
        self.accepting = False
        self.ready = threading.Event()

    def _new_engine(self) -> Engine:
        return Engine(self.target, **self.engine_options, on_step=self._stepped)

    @property
    def max_model_len(self) -> int:
        return self.engine.max_model_len

    def check(self, prompt_ids: list[int], max_new_tokens: int) -> None:
        """The engine's admission check (reads only fixed limits: safe from any thread)."""
        self.engine.check(prompt_ids, max_new_tokens)

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self, warmup: bool = True) -> None:
        """Start the engine thread; `ready` is set (and requests accepted) once the warm-up step has run."""
        self._thread = threading.Thread(target=self._main, args=(warmup,), name="specdec-engine", daemon=True)
        self._thread.start()

    def drain(self, timeout: float) -> int:
        """Stop accepting, give the requests in flight `timeout` seconds, then abort the rest and wait for them
        to end. Returns how many were aborted."""
        self.accepting = False
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._sinks and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            late = list(self._sinks)
        for request_id in late:
            self.abort(request_id)
        with self._cond:
            self._cond.wait_for(lambda: not self._sinks or self._thread is None or not self._thread.is_alive(),
                                timeout=30)
        return len(late)

    def shutdown(self) -> None:
        self.drain(0)
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)

    # -- called from the event loop's thread ------------------------------------------------------------------

    def submit(self, request: Request) -> Handle:
        """Queue a request (already checked); raises NotAccepting or QueueFull."""
        if not self.accepting:
            raise NotAccepting()
        sink = _Sink(asyncio.get_running_loop())
        rid = request.request_id
        request.on_tokens = lambda ids: self._emitted(rid, sink, ids)
        with self._cond:
            if len(self._sinks) >= self.capacity:
                raise QueueFull()
            self._sinks[rid] = sink
            self._inbox.append(("add", request))
            self._cond.notify_all()
        return Handle(self, rid, sink)

    def abort(self, request_id: str) -> None:
        with self._cond:
            self._inbox.append(("abort", request_id))
            self._cond.notify_all()

    def stats(self) -> RunnerStats:
        with self._cond:
            held = len(self._sinks)
        return RunnerStats(self._running, max(0, held - self._running), self._free)

    # -- the engine's thread ----------------------------------------------------------------------------------

    def _main(self, warmup: bool) -> None:
        if self._make_budget is not None:
            self.engine_options["budget"] = self.engine.budget = self._make_budget()
        if warmup:
            self._warm_up()
        self.accepting = True
        self.ready.set()
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._inbox or self.engine.has_work or self._stop)
                if self._stop and not self._inbox and not self.engine.has_work:
                    return
                jobs = list(self._inbox)
                self._inbox.clear()
            for kind, item in jobs:
                self._take(kind, item)
            if self.engine.has_work:
                self._step()
            self._running, self._free = len(self.engine.running), self.engine.free_slots

    def _warm_up(self) -> None:
        """One short request, so that the cache is allocated and the first pass has run before requests come."""
        try:
            self.engine.add(Request([0], 1))
            self.engine.run()
        except Exception:                     # a failed warm-up is logged; real requests report their own errors
            log.exception("warm-up request failed")
            self.engine = self._new_engine()

    def _take(self, kind: str, item) -> None:
        if kind == "abort":
            if item in self._sinks:
                self.engine.abort(item)
            return
        try:
            self.engine.add(item)             # checked by the handler before it was queued
        except Exception:
            log.exception("request %s could not be queued", item.request_id)
            self._fail([item.request_id])

    def _step(self) -> None:
        try:
            ended = self.engine.step()
        except Exception:
            log.exception("engine step failed; the requests in it fail and a fresh engine takes over")
            self.engine = self._new_engine()
            self._running, self._free = 0, self.engine.free_slots
            with self._cond:
                queued = {item.request_id for kind, item in self._inbox if kind == "add"}
                in_engine = [rid for rid in self._sinks if rid not in queued]
            self._fail(in_engine)
            return
        self._running, self._free = len(self.engine.running), self.engine.free_slots   # before anyone hears
        for result in ended:
            with self._cond:
                sink = self._sinks.pop(result.request_id, None)
                self._cond.notify_all()
            if sink is not None:
                if self.observer:
                    self.observer.finished(result, time.perf_counter() - sink.submitted)
                sink.put(Finished(result))

    def _fail(self, request_ids: list[str]) -> None:
        with self._cond:
            sinks = [self._sinks.pop(rid) for rid in request_ids if rid in self._sinks]
            self._cond.notify_all()
        for sink in sinks:
            sink.put(Failed())

    def _emitted(self, request_id: str, sink: _Sink, ids: list[int]) -> None:
        now = time.perf_counter()
        if self.observer:
            if sink.last is None:
                self.observer.first_token(now - sink.submitted)
            else:
                self.observer.inter_token(now - sink.last)
        sink.last = now
        sink.put(Tokens(list(ids)))

    def _stepped(self, report: StepReport) -> None:
        if self.observer:
            self.observer.step(report)

