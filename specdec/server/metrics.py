"""Prometheus metrics of one server, in its own registry. Names follow vLLM's under a `specdec:` prefix (so a
vLLM dashboard can point at them), each with a `model_name` label. Counters are exposed with `_total`."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from specdec.engine import GenerationResult, StepReport
from specdec.server.runner import RunnerStats

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0, 80.0)
ITL_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
               480.0, 960.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """Fed by the runner (an Observer): per step, per token output, per finished request."""

    def __init__(self, model_name: str, stats: Callable[[], RunnerStats]):
        disable_created_metrics()            # no `_created` series beside each counter (as vLLM does)
        self.registry = r = CollectorRegistry()
        name = {"model_name": model_name}

        def counter(metric: str, doc: str) -> Counter:
            return Counter(f"specdec:{metric}", doc, ["model_name"], registry=r).labels(**name)

        def histogram(metric: str, doc: str, buckets) -> Histogram:
            return Histogram(f"specdec:{metric}", doc, ["model_name"], buckets=buckets, registry=r).labels(**name)

        def gauge(metric: str, doc: str, read: Callable[[RunnerStats], int]) -> None:
            g = Gauge(f"specdec:{metric}", doc, ["model_name"], registry=r)
            g.labels(**name).set_function(lambda: read(stats()))

        self.drafts = counter("spec_decode_num_drafts", "Decode steps of a request with a non-empty draft.")
        self.draft_tokens = counter("spec_decode_num_draft_tokens", "Draft tokens proposed.")
        self.accepted = counter("spec_decode_num_accepted_tokens", "Draft tokens accepted by the verifier.")
        self._per_pos = Counter("specdec:spec_decode_num_accepted_tokens_per_pos",
                                "Draft tokens accepted at each position (0 = the first draft token).",
                                ["model_name", "position"], registry=r)
        self._name = model_name
        self.prompt_tokens = counter("prompt_tokens", "Prompt tokens of finished requests.")
        self.generation_tokens = counter("generation_tokens", "Completion tokens returned by finished requests.")
        self._success = Counter("specdec:request_success", "Finished requests by finish reason.",
                                ["model_name", "finished_reason"], registry=r)
        self.ttft = histogram("time_to_first_token_seconds", "Time from arrival to the first token.", TTFT_BUCKETS)
        self.itl = histogram("inter_token_latency_seconds",
                             "Time between a request's consecutive outputs (one per step; a step may emit several "
                             "tokens).", ITL_BUCKETS)
        self.e2e = histogram("e2e_request_latency_seconds", "Time from arrival to the end of a request.",
                             E2E_BUCKETS)
        gauge("num_requests_running", "Requests in a slot (prefilling or decoding).", lambda s: s.running)
        gauge("num_requests_waiting", "Requests waiting for a slot.", lambda s: s.waiting)
        gauge("free_slots", "Slots free for the next request.", lambda s: s.free_slots)

    # -- Observer ----------------------------------------------------------------------------------------------

    def step(self, report: StepReport) -> None:
        self.drafts.inc(report.drafts)
        self.draft_tokens.inc(report.draft_tokens)
        self.accepted.inc(report.accepted_tokens)
        for position, n in enumerate(report.accepted_per_depth):
            self._per_pos.labels(model_name=self._name, position=str(position)).inc(n)

    def first_token(self, seconds: float) -> None:
        self.ttft.observe(seconds)

    def inter_token(self, seconds: float) -> None:
        self.itl.observe(seconds)

    def finished(self, result: GenerationResult, seconds: float) -> None:
        self.prompt_tokens.inc(len(result.prompt_ids))
        self.generation_tokens.inc(len(result.token_ids))
        self._success.labels(model_name=self._name, finished_reason=result.finish_reason).inc()
        self.e2e.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
