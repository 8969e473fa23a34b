"""From an OpenAI request to what the engine needs: prompt ids, token limit, sampling, stop strings, method.
Every refusal is an APIError(400) naming the field, the bad value and what is accepted."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from specdec.config import SamplingParams
from specdec.errors import ConfigError, ContextLengthError
from specdec.server.errors import APIError
from specdec.server.protocol import ChatCompletionRequest, ChatMessage, CompletionRequest, _Sampled

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}

_OFF = "absent (not implemented by this server)"
# field -> (is the value one the server cannot honour?, what is accepted)
UNSUPPORTED: dict[str, tuple[Callable[[object], bool], str]] = {
    "n": (lambda v: v not in (None, 1), "1 (one choice per request)"),
    "best_of": (lambda v: v not in (None, 1), "1 or absent"),
    "presence_penalty": (lambda v: v not in (None, 0), "0 or absent (penalties are not implemented)"),
    "frequency_penalty": (lambda v: v not in (None, 0), "0 or absent (penalties are not implemented)"),
    "logit_bias": (bool, "absent or empty"),
    "logprobs": (lambda v: v is not None and v is not False, "absent or false (log probabilities are not returned)"),
    "top_logprobs": (lambda v: v not in (None, 0), "absent or 0 (log probabilities are not returned)"),
    "response_format": (lambda v: v is not None and v.get("type") != "text", '{"type": "text"} or absent'),
    "tools": (bool, _OFF), "functions": (bool, _OFF),
    "tool_choice": (lambda v: v not in (None, "none"), '"none" or absent (tool calling is not implemented)'),
    "function_call": (lambda v: v not in (None, "none"), '"none" or absent (tool calling is not implemented)'),
    "echo": (bool, "false or absent"),
    "suffix": (bool, "empty or absent"),
}


@dataclass(frozen=True)
class Job:
    """One validated request, ready for the engine."""
    prompt_ids: list[int]
    max_new_tokens: int
    sampling: SamplingParams
    stop: tuple[str, ...]
    method: str
    stream: bool
    include_usage: bool
    return_token_ids: bool = False
    learn: bool = True


def refuse_unsupported(req: _Sampled) -> None:
    for name, (unsupported, accepted) in UNSUPPORTED.items():
        if name in type(req).model_fields and unsupported(value := getattr(req, name)):
            raise APIError(400, f"{name}={value!r} is not supported by this server; accepted: {accepted}", param=name)


def chat_messages(messages: list[ChatMessage]) -> list[dict]:
    """The messages as {"role", "content"} dicts for the chat template (text content parts joined)."""
    out = []
    for i, m in enumerate(messages):
        if m.role not in ROLES:
            raise APIError(400, f"messages[{i}].role={m.role!r} is not supported; accepted: "
                                f"{', '.join(ROLES)}", param=f"messages[{i}].role")
        out.append({"role": ROLES[m.role], "content": _content(m.content, i)})
    return out


def _content(content, i: int) -> str:
    if not isinstance(content, list):
        return content or ""
    texts = []
    for part in content:
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise APIError(400, f"messages[{i}].content has a part of type {part.get('type')!r}; accepted: "
                                f"text parts ({{\"type\": \"text\", \"text\": ...}})", param=f"messages[{i}].content")
        texts.append(part["text"])
    return "\n".join(texts)


def completion_prompt(prompt, vocab_size: int) -> str | list[int]:
    """A text prompt, or token ids given as a list of integers."""
    if isinstance(prompt, str):
        return prompt
    if prompt and all(isinstance(p, str) for p in prompt):
        if len(prompt) != 1:
            raise APIError(400, f"prompt is a list of {len(prompt)} strings; accepted: one string (batched "
                                f"prompts are not supported)", param="prompt")
        return prompt[0]
    if not prompt:
        raise APIError(400, "prompt is an empty list; accepted: a string or a list of token ids", param="prompt")
    bad = [t for t in prompt if not 0 <= t < vocab_size]
    if bad:
        raise APIError(400, f"prompt token id {bad[0]} is out of range; accepted: ids in [0, {vocab_size})",
                       param="prompt")
    return list(prompt)


def sampling_params(req: _Sampled) -> SamplingParams:
    """OpenAI defaults where a field is absent: temperature 1.0 (sampling; 0 = greedy), top_p 1.0."""
    try:
        return SamplingParams(temperature=1.0 if req.temperature is None else req.temperature,
                              top_k=0 if req.top_k in (None, -1) else req.top_k,
                              top_p=1.0 if req.top_p is None else req.top_p,
                              min_p=0.0 if req.min_p is None else req.min_p, seed=req.seed)
    except ConfigError as e:
        name = re.match(r"(\w+)=", str(e))
        raise APIError(400, str(e).rstrip("."), param=name.group(1) if name else None) from None


def stop_strings(stop) -> tuple[str, ...]:
    items = [stop] if isinstance(stop, str) else list(stop or [])
    if "" in items:
        raise APIError(400, "stop contains an empty string; accepted: non-empty strings", param="stop")
    return tuple(items)


def max_new_tokens(requested: int | None, prompt_len: int, limit: int, default: int, field: str) -> int:
    """The request's token limit; absent: `default`, capped by the room the context leaves after the prompt."""
    if requested is None:
        return max(1, min(default, limit - prompt_len))      # a prompt that leaves no room fails the engine check
    if requested < 1:
        raise APIError(400, f"{field}={requested} is invalid; accepted: an integer >= 1", param=field)
    return requested


def check_fits(check: Callable[[list[int], int], None], prompt_ids: list[int], max_new: int, field: str) -> None:
    """The engine's own check (context window, empty prompt) as a 400."""
    try:
        check(prompt_ids, max_new)
    except ContextLengthError as e:
        raise APIError(400, str(e), param=field, code="context_length_exceeded") from None
    except ConfigError as e:
        raise APIError(400, str(e), param=field) from None


def pick_method(requested: str | None, loaded: list[str]) -> str:
    if requested is None:
        return loaded[0]
    if requested not in loaded:
        raise APIError(400, f"method {requested!r} is not loaded on this server; accepted: {', '.join(loaded)}",
                       param="method")
    return requested


def job(req: ChatCompletionRequest | CompletionRequest, prompt_ids: list[int], *, limit: int, default_max: int,
        methods: list[str], check: Callable[[list[int], int], None]) -> Job:
    """The validated Job of a request whose prompt is already `prompt_ids`."""
    chat = isinstance(req, ChatCompletionRequest)
    requested, field = ((req.max_completion_tokens, "max_completion_tokens") if chat and
                        req.max_completion_tokens is not None else (req.max_tokens, "max_tokens"))
    n = max_new_tokens(requested, len(prompt_ids), limit, default_max, field)
    check_fits(check, prompt_ids, n, "messages" if chat else "prompt")
    include_usage = bool(req.stream and req.stream_options and req.stream_options.include_usage)
    return Job(prompt_ids, n, sampling_params(req), stop_strings(req.stop), pick_method(req.method, methods),
               req.stream, include_usage, req.return_token_ids, req.learn)
