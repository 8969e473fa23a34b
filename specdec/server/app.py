"""The HTTP application: OpenAI-compatible routes over one runner, with health, models and metrics.

`create_app(target, methods, config)` builds it around an already loaded target, so that tests start it
in-process on tiny models; `specdec serve` loads the real one and runs the app under uvicorn."""

from __future__ import annotations

import hmac
import time
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from specdec.load_aware import LoadAwareBudget, load_or_measure
from specdec.server.config import ServerConfig
from specdec.server.errors import APIError, error_body, install_error_handlers
from specdec.server.generation import Generations
from specdec.server.methods import Methods
from specdec.server.metrics import CONTENT_TYPE, Metrics
from specdec.server.protocol import ChatCompletionRequest, CompletionRequest, ModelCard, ModelList
from specdec.server.runner import EngineRunner


def create_app(target, methods: Methods, config: ServerConfig, *, warmup: bool = True) -> FastAPI:
    """The app; its runner (app.state.runner) starts with the app's lifespan and drains when it ends. With
    load-aware speculation the runner first loads (or measures, once per machine and model) the cost surface."""
    budget = (lambda: LoadAwareBudget(load_or_measure(target)[0])) if config.speculation == "load-aware" else None
    runner = EngineRunner(target, config.engine_options, max_queue=config.max_queue, budget=budget)
    metrics = Metrics(config.served_model_name, runner.stats)
    runner.observer = metrics
    generations = Generations(target, methods, runner, config.served_model_name, config.default_max_tokens)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        runner.start(warmup)
        yield
        await run_in_threadpool(runner.shutdown)

    app = FastAPI(title="specdec", lifespan=lifespan)
    app.state.runner, app.state.metrics, app.state.config = runner, metrics, config
    install_error_handlers(app)
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(_authorize(config.api_key))] if config.api_key else [])

    @v1.post("/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request):
        return await generations.chat(body, request.receive)

    @v1.post("/completions")
    async def completions(body: CompletionRequest, request: Request):
        return await generations.completion(body, request.receive)

    created = int(time.time())

    @v1.get("/models")
    async def models() -> ModelList:
        card = ModelCard(id=config.served_model_name, created=created, max_model_len=runner.max_model_len,
                         methods=methods.names)
        return ModelList(data=[card])

    @app.get("/health")
    async def health():
        if runner.ready.is_set() and runner.accepting:
            return {"status": "ok"}
        state = "starting" if not runner.ready.is_set() else "shutting down"
        return JSONResponse(error_body(503, f"the server is {state}; accepted: retry later", code="not_ready"),
                            status_code=503)

    @app.get("/metrics")
    async def prometheus():
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    app.include_router(v1)
    return app


def _authorize(key: str):
    expected = f"Bearer {key}".encode()

    async def check(request: Request) -> None:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise APIError(401, "the request has no valid API key; accepted: the header 'Authorization: Bearer "
                                "<key>' with the server's --api-key", code="invalid_api_key")
    return check
