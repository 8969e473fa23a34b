"""One request to an OpenAI-compatible server over HTTP, timed: when it was sent, when each content chunk
arrived, when it finished, how many completion tokens it returned and the server's `speculative` usage if any.

Only HTTP is spoken here, so the same client measures specdec serve and any OpenAI-compatible peer (vLLM,
llama.cpp's server). Streaming asks for `stream_options.include_usage` so the token count comes from the server;
without a usage block each content chunk counts as one token (`token_source` says which)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx

from specdec.errors import ConfigError


@dataclass
class RequestSettings:
    base_url: str                   # ".../v1"
    model: str
    endpoint: str = "chat"          # "chat" or "completions"
    max_tokens: int = 128
    temperature: float = 0.0
    stream: bool = True
    extra: dict = field(default_factory=dict)   # merged into every request body
    timeout: float = 300.0          # seconds a whole request may take
    api_key: str | None = None


@dataclass
class RequestResult:
    ok: bool
    error: str | None               # HTTP status code as text, "timeout", "connection" or "stream"
    start: float                    # time.perf_counter() when sent
    end: float                      # ... when the last byte arrived (or the error)
    chunk_times: list[float] = field(default_factory=list)   # arrival of each chunk with content
    tokens: int = 0                 # completion tokens (usage, else content chunks)
    token_source: str = "chunks"    # "usage" or "chunks"
    speculative: dict | None = None  # the server's usage.speculative, if sent

    @property
    def e2e(self) -> float:
        return self.end - self.start

    @property
    def ttft(self) -> float | None:
        return self.chunk_times[0] - self.start if self.chunk_times else None


def loopback_base_url(url: str) -> str:
    """The OpenAI base URL (ending in /v1) of a server on this machine; any other host is refused."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(f"--url {url!r} is not an http(s) URL; accepted: e.g. http://127.0.0.1:8000/v1")
    if not _is_loopback(host):
        raise ConfigError(f"--url {url!r} is not on this machine; accepted: a loopback host (127.0.0.0/8, localhost, "
                          f"::1), since this benchmark measures a server running here")
    path = parts.path.rstrip("/") or "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def headers(api_key: str | None) -> dict:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


async def first_model(client: httpx.AsyncClient, base_url: str, api_key: str | None) -> str:
    """The id of the first model GET /v1/models lists (the server's served model name)."""
    try:
        r = await client.get(f"{base_url}/models", headers=headers(api_key), timeout=30.0)
        r.raise_for_status()
        return r.json()["data"][0]["id"]
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as e:
        raise ConfigError(f"GET {base_url}/models gave no model name ({type(e).__name__}: {e}); accepted: a running "
                          f"OpenAI-compatible server at --url, or name the model with --model") from None


def request_body(s: RequestSettings, prompt: str) -> dict:
    body: dict = {"model": s.model, "max_tokens": s.max_tokens, "temperature": s.temperature, "stream": s.stream}
    if s.endpoint == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    if s.stream:
        body["stream_options"] = {"include_usage": True}
    return {**body, **s.extra}


async def send(client: httpx.AsyncClient, s: RequestSettings, prompt: str) -> RequestResult:
    """Send one request and time it; a failure is a result with `ok=False`, never an exception."""
    result = RequestResult(ok=False, error=None, start=time.perf_counter(), end=0.0)
    try:
        await asyncio.wait_for(_exchange(client, s, prompt, result), s.timeout)
        result.ok = result.error is None
    except (TimeoutError, httpx.TimeoutException):
        result.error = "timeout"
    except (httpx.HTTPError, httpx.StreamError):
        result.error = "connection"
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        result.error = "bad response"
    result.end = time.perf_counter()
    return result


async def _exchange(client: httpx.AsyncClient, s: RequestSettings, prompt: str, result: RequestResult) -> None:
    path = "chat/completions" if s.endpoint == "chat" else "completions"
    async with client.stream("POST", f"{s.base_url}/{path}", json=request_body(s, prompt),
                             headers=headers(s.api_key)) as response:
        if response.status_code != 200:
            await response.aread()
            result.error = str(response.status_code)
        elif s.stream:
            await _read_stream(response, s.endpoint, result)
        else:
            _read_whole(json.loads(await response.aread()), result)


async def _read_stream(response: httpx.Response, endpoint: str, result: RequestResult) -> None:
    """Server-sent events: `data: {chunk}` lines until `data: [DONE]`."""
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        chunk = json.loads(data)
        if "error" in chunk:
            result.error = "stream"
            return
        if any(_content(c, endpoint) for c in chunk.get("choices") or []):
            result.chunk_times.append(time.perf_counter())
        if chunk.get("usage"):
            _take_usage(chunk["usage"], result)
    if result.token_source == "chunks":
        result.tokens = len(result.chunk_times)


def _read_whole(body: dict, result: RequestResult) -> None:
    if body.get("usage"):
        _take_usage(body["usage"], result)
    elif body.get("choices"):
        result.error = "no usage"     # a whole response without usage gives no token count


def _content(choice: dict, endpoint: str) -> str:
    if endpoint == "chat":
        return (choice.get("delta") or {}).get("content") or ""
    return choice.get("text") or ""


def _take_usage(usage: dict, result: RequestResult) -> None:
    result.tokens, result.token_source = int(usage["completion_tokens"]), "usage"
    if isinstance(usage.get("speculative"), dict):
        result.speculative = usage["speculative"]
