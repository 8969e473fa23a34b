"""Response bodies and streamed chunks of the two generation routes, from the text and the engine's result.
A Shape builds every message of one request, so that all of them carry the same id and creation time."""

from __future__ import annotations

import time
from uuid import uuid4

from pydantic import BaseModel

from specdec.engine import GenerationResult
from specdec.server.protocol import (
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatDelta,
    ChatMessageOut,
    Completion,
    CompletionChoice,
    SpeculativeUsage,
    Usage,
)


def usage(result: GenerationResult) -> Usage:
    """Token counts of a finished request; `speculative` from its engine statistics."""
    s = result.stats
    prompt, completion = len(result.prompt_ids), len(result.token_ids)
    spec = SpeculativeUsage(mean_accepted_length=round(s.mean_accepted_length, 4), draft_tokens=s.draft_tokens,
                            accepted_tokens=sum(s.accepted_per_depth), target_forward_passes=s.target_forwards,
                            drafter=dict(s.drafter))
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
                 speculative=spec)


class ChatShape:
    def __init__(self, model: str):
        self.id, self.created, self.model = f"chatcmpl-{uuid4().hex}", int(time.time()), model

    def _chunk(self, choices: list[ChatChunkChoice], usage: Usage | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(id=self.id, created=self.created, model=self.model, choices=choices, usage=usage)

    def opening(self) -> BaseModel:
        return self._chunk([ChatChunkChoice(delta=ChatDelta(role="assistant", content=""))])

    def delta(self, text: str) -> BaseModel:
        return self._chunk([ChatChunkChoice(delta=ChatDelta(content=text))])

    def closing(self, finish_reason: str, token_ids: list[int] | None = None) -> BaseModel:
        return self._chunk([ChatChunkChoice(delta=ChatDelta(), finish_reason=finish_reason, token_ids=token_ids)])

    def usage_chunk(self, u: Usage) -> BaseModel:
        return self._chunk([], u)

    def whole(self, text: str, finish_reason: str, u: Usage, token_ids: list[int] | None = None) -> BaseModel:
        choice = ChatChoice(message=ChatMessageOut(content=text), finish_reason=finish_reason, token_ids=token_ids)
        return ChatCompletion(id=self.id, created=self.created, model=self.model, choices=[choice], usage=u)


class CompletionShape:
    def __init__(self, model: str):
        self.id, self.created, self.model = f"cmpl-{uuid4().hex}", int(time.time()), model

    def _body(self, choices: list[CompletionChoice], usage: Usage | None = None) -> Completion:
        return Completion(id=self.id, created=self.created, model=self.model, choices=choices, usage=usage)

    def opening(self) -> BaseModel | None:
        return None

    def delta(self, text: str) -> BaseModel:
        return self._body([CompletionChoice(text=text)])

    def closing(self, finish_reason: str, token_ids: list[int] | None = None) -> BaseModel:
        return self._body([CompletionChoice(text="", finish_reason=finish_reason, token_ids=token_ids)])

    def usage_chunk(self, u: Usage) -> BaseModel:
        return self._body([], u)

    def whole(self, text: str, finish_reason: str, u: Usage, token_ids: list[int] | None = None) -> BaseModel:
        return self._body([CompletionChoice(text=text, finish_reason=finish_reason, token_ids=token_ids)], u)


Shape = ChatShape | CompletionShape
