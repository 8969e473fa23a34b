"""The OpenAI API's request and response shapes as pydantic models (the subset specdec serves, plus vLLM's
`top_k` / `min_p` and specdec's `method`). Unknown request fields are accepted and ignored; fields that would
change the answer but are not implemented are declared here so that the server can refuse them by name."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Token ids of a completion (only when the request asked for them; left out of the JSON otherwise).
TokenIds = Field(default=None, exclude_if=lambda v: v is None)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class _Sampled(BaseModel):
    """Fields common to chat and text completions."""
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None           # absent: 1.0, as in the OpenAI API; 0 = greedy
    top_p: float | None = None
    top_k: int | None = None                   # extension (vLLM's name); 0 or -1 = off
    min_p: float | None = None                 # extension (vLLM's name); 0 = off
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = None
    method: str | None = None                  # extension: a drafting method the server loaded
    learn: bool = True                         # extension: false = this response never shapes others' drafts
    return_token_ids: bool = False             # extension (vLLM's name): the completion's token ids in the choice
    # Declared so that they can be refused by name when set (see params.UNSUPPORTED).
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    best_of: int | None = None
    response_format: dict[str, Any] | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    functions: list[Any] | None = None
    function_call: Any = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(_Sampled):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None


class CompletionRequest(_Sampled):
    prompt: str | list[str] | list[int]
    logprobs: int | None = None
    echo: bool | None = None
    suffix: str | None = None


class SpeculativeUsage(BaseModel):
    mean_accepted_length: float     # tokens emitted per target forward pass, bonus/recovered token included
    draft_tokens: int               # draft tokens proposed
    accepted_tokens: int            # of which the verifier accepted
    target_forward_passes: int
    drafter: dict[str, int] = {}    # the drafter's own counts, e.g. steps per translation path of a cross-tokenizer draft


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int          # tokens returned (emitted, minus any cut at a stop)
    total_tokens: int
    speculative: SpeculativeUsage


class _Response(BaseModel):
    """What every response object carries: its id, creation time (Unix seconds) and the served model's name."""
    id: str
    created: int
    model: str


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatMessageOut
    logprobs: None = None
    finish_reason: str
    token_ids: list[int] | None = TokenIds


class ChatCompletion(_Response):
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[ChatChoice]
    usage: Usage


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int = 0
    delta: ChatDelta
    logprobs: None = None
    finish_reason: str | None = None
    token_ids: list[int] | None = TokenIds      # all of them, in the closing chunk


class ChatCompletionChunk(_Response):
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    logprobs: None = None
    finish_reason: str | None = None
    token_ids: list[int] | None = TokenIds      # streaming: all of them, in the closing chunk


class Completion(_Response):
    """A text completion, and (with object "text_completion" too, as OpenAI sends it) one streamed chunk."""
    object: Literal["text_completion"] = "text_completion"
    choices: list[CompletionChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "specdec"
    max_model_len: int
    methods: list[str]              # extension: drafting methods a request may pick, the default first


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
