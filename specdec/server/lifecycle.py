"""uvicorn with a drain: the first SIGTERM / SIGINT stops new requests (503), gives those in flight the drain
timeout, aborts the rest (finish reason "abort"), and only then lets uvicorn close. A second signal forces it."""

from __future__ import annotations

import logging
import threading

import uvicorn

from specdec.server.runner import EngineRunner

log = logging.getLogger("specdec.server")


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, runner: EngineRunner, drain_timeout: float):
        super().__init__(config)
        self.runner, self.drain_timeout = runner, drain_timeout
        self._draining: threading.Thread | None = None

    def handle_exit(self, sig: int, frame) -> None:
        if self._draining is not None:                 # a second signal: stop now
            super().handle_exit(sig, frame)
            self.force_exit = True
            return
        self._draining = threading.Thread(target=self._drain_then_exit, args=(sig, frame), name="specdec-drain",
                                          daemon=True)
        self._draining.start()

    def _drain_then_exit(self, sig: int, frame) -> None:
        aborted = self.runner.drain(self.drain_timeout)
        if aborted:
            log.warning("aborted %d request(s) still running after the %.0f s drain", aborted, self.drain_timeout)
        super().handle_exit(sig, frame)
