"""One generation request from start to end: validate it, hand it to the runner, and answer with one JSON body
or a stream of server-sent events (`data: {...}` chunks, then `data: [DONE]`). A client that goes away, while
streaming or while waiting for the whole answer, aborts its request, so its slot is free before the next step."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from specdec.engine import Request
from specdec.errors import SpecdecError
from specdec.server import params
from specdec.server.errors import INTERNAL, APIError, error_body
from specdec.server.methods import Methods
from specdec.server.protocol import ChatCompletionRequest, CompletionRequest
from specdec.server.responses import ChatShape, CompletionShape, Shape, usage
from specdec.server.runner import EngineRunner, Finished, Handle, NotAccepting, QueueFull, Tokens
from specdec.server.text import TextStream

Receive = Callable[[], Awaitable[dict]]


class Generations:
    """Serves chat and text completions of one model with the runner's engine."""

    def __init__(self, target, methods: Methods, runner: EngineRunner, model_name: str, default_max_tokens: int):
        self.target, self.methods, self.runner = target, methods, runner
        self.model_name, self.default_max_tokens = model_name, default_max_tokens

    async def chat(self, body: ChatCompletionRequest, receive: Receive):
        self._check_request(body)
        prompt_ids = self._encode(params.chat_messages(body.messages), chat=True, field="messages")
        return await self._run(body, prompt_ids, ChatShape(self.model_name), receive)

    async def completion(self, body: CompletionRequest, receive: Receive):
        self._check_request(body)
        prompt = params.completion_prompt(body.prompt, self.target.runtime.vocab_size)
        prompt_ids = prompt if isinstance(prompt, list) else self._encode(prompt, chat=False, field="prompt")
        return await self._run(body, prompt_ids, CompletionShape(self.model_name), receive)

    def _check_request(self, body) -> None:
        if body.model is not None and body.model != self.model_name:
            raise APIError(404, f"model {body.model!r} does not exist on this server; accepted: "
                                f"{self.model_name!r}", param="model", code="model_not_found")
        params.refuse_unsupported(body)
        if not self.runner.accepting:
            raise _unavailable()

    def _encode(self, prompt, *, chat: bool, field: str) -> list[int]:
        try:
            return self.target.encode(prompt, chat=chat)
        except SpecdecError as e:
            raise APIError(400, str(e), param=field) from None

    async def _run(self, body, prompt_ids: list[int], shape: Shape, receive: Receive):
        job = params.job(body, prompt_ids, limit=self.runner.max_model_len, default_max=self.default_max_tokens,
                         methods=self.methods.names, check=self.runner.check)
        request = Request(job.prompt_ids, job.max_new_tokens, job.sampling, job.stop,
                          self.methods.drafter(job.method), learn=job.learn)
        try:
            handle = self.runner.submit(request)
        except NotAccepting:
            raise _unavailable() from None
        except QueueFull:
            raise APIError(429, f"the server is busy: {self.runner.capacity} requests are running or waiting; "
                                f"accepted: retry later", code="queue_full") from None
        text = TextStream(self.target.decode, job.stop)
        if job.stream:
            return StreamingResponse(_stream(handle, shape, text, job), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        return JSONResponse((await _collect(handle, shape, text, job, receive)).model_dump())


async def _stream(handle: Handle, shape: Shape, text: TextStream, job: params.Job) -> AsyncIterator[str]:
    try:
        if (opening := shape.opening()) is not None:
            yield _sse(opening)
        async for event in handle.events():
            if isinstance(event, Tokens):
                if delta := text.add(event.ids):
                    yield _sse(shape.delta(delta))
            elif isinstance(event, Finished):
                if rest := text.finish():
                    yield _sse(shape.delta(rest))
                yield _sse(shape.closing(event.result.finish_reason, _ids(event.result, job)))
                if job.include_usage:
                    yield _sse(shape.usage_chunk(usage(event.result)))
            else:
                yield f"data: {json.dumps(error_body(500, INTERNAL))}\n\n"
        yield "data: [DONE]\n\n"
    finally:                                   # also when the client went away and the stream was cancelled
        handle.close()


async def _collect(handle: Handle, shape: Shape, text: TextStream, job: params.Job, receive: Receive) -> BaseModel:
    watcher = asyncio.create_task(_abort_on_disconnect(receive, handle))
    try:
        async for event in handle.events():
            if isinstance(event, Tokens):
                text.add(event.ids)
            elif isinstance(event, Finished):
                text.finish()
                result = event.result
                return shape.whole(text.sent, result.finish_reason, usage(result), _ids(result, job))
        raise APIError(500, INTERNAL)
    finally:
        watcher.cancel()
        handle.close()


async def _abort_on_disconnect(receive: Receive, handle: Handle) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    handle.close()


def _ids(result, job: params.Job) -> list[int] | None:
    return list(result.token_ids) if job.return_token_ids else None


def _sse(message: BaseModel) -> str:
    return f"data: {message.model_dump_json()}\n\n"


def _unavailable() -> APIError:
    return APIError(503, "the server is not accepting requests (starting up or shutting down); accepted: retry "
                         "when /health answers 200", code="not_ready")
