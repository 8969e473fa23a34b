"""Every bad request gets its status and one clear sentence in an OpenAI error body, never a traceback, and the
server keeps serving: malformed bodies, unsupported fields, bad sampling values, prompts too long, unknown
methods and models, a missing API key, a full queue, an internal error."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.server.conftest import Boom, SlowDraft
from tests.server.helpers import MODEL, serve

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4, "temperature": 0}
TEXT = {"model": MODEL, "prompt": "hello", "max_tokens": 4, "temperature": 0}

# (route, body or raw bytes, status, param, words the message must contain)
CASES = [
    ("chat", b"{not json", 400, None, ["not valid JSON"]),
    ("chat", b"[1, 2]", 400, None, ["JSON object"]),
    ("chat", {"model": MODEL}, 400, "messages", ["messages is required"]),
    ("chat", {**CHAT, "messages": []}, 400, "messages", ["messages"]),
    ("chat", {**CHAT, "temperature": "hot"}, 400, "temperature", ["temperature", "hot"]),
    ("chat", {**CHAT, "temperature": -1}, 400, "temperature", ["temperature=-1", "accepted"]),
    ("chat", {**CHAT, "top_p": 0}, 400, "top_p", ["top_p=0", "accepted"]),
    ("chat", {**CHAT, "top_k": -5}, 400, "top_k", ["top_k=-5", "accepted"]),
    ("chat", {**CHAT, "min_p": 1.5}, 400, "min_p", ["min_p=1.5"]),
    ("chat", {**CHAT, "seed": -3}, 400, "seed", ["seed=-3"]),
    ("chat", {**CHAT, "n": 2}, 400, "n", ["n=2", "accepted: 1"]),
    ("chat", {**CHAT, "presence_penalty": 0.5}, 400, "presence_penalty", ["presence_penalty=0.5"]),
    ("chat", {**CHAT, "frequency_penalty": 1}, 400, "frequency_penalty", ["frequency_penalty"]),
    ("chat", {**CHAT, "logprobs": True}, 400, "logprobs", ["logprobs"]),
    ("chat", {**CHAT, "top_logprobs": 3}, 400, "top_logprobs", ["top_logprobs"]),
    ("chat", {**CHAT, "response_format": {"type": "json_object"}}, 400, "response_format", ["response_format"]),
    ("chat", {**CHAT, "tools": [{"type": "function", "function": {"name": "f"}}]}, 400, "tools", ["tools"]),
    ("chat", {**CHAT, "tool_choice": "auto"}, 400, "tool_choice", ["tool_choice"]),
    ("chat", {**CHAT, "functions": [{"name": "f"}]}, 400, "functions", ["functions"]),
    ("chat", {**CHAT, "logit_bias": {"5": 10}}, 400, "logit_bias", ["logit_bias"]),
    ("chat", {**CHAT, "max_tokens": 0}, 400, "max_tokens", ["max_tokens=0"]),
    ("chat", {**CHAT, "max_tokens": 5000}, 400, "messages", ["exceeds", "512"]),
    ("chat", {**CHAT, "stop": ""}, 400, "stop", ["empty string"]),
    ("chat", {**CHAT, "method": "eagle"}, 400, "method", ["'eagle'", "vanilla, slow, boom"]),
    ("chat", {**CHAT, "messages": [{"role": "tool", "content": "x"}]}, 400, "messages[0].role", ["'tool'"]),
    ("chat", {**CHAT, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}, 400,
     "messages[0].content", ["image_url", "text parts"]),
    ("text", {**TEXT, "prompt": [7] * 600}, 400, "prompt", ["prompt of 600 tokens", "exceeds"]),
    ("text", {**TEXT, "prompt": ["a", "b"]}, 400, "prompt", ["2 strings", "one string"]),
    ("text", {**TEXT, "prompt": [5, 99999]}, 400, "prompt", ["99999"]),
    ("text", {**TEXT, "best_of": 2}, 400, "best_of", ["best_of=2"]),
    ("text", {**TEXT, "echo": True}, 400, "echo", ["echo"]),
    ("text", {**TEXT, "suffix": "end"}, 400, "suffix", ["suffix"]),
    ("text", {**TEXT, "logprobs": 2}, 400, "logprobs", ["logprobs"]),
    ("text", {**TEXT, "model": "gpt-4"}, 404, "model", ["'gpt-4'", MODEL]),
]
ROUTES = {"chat": "/v1/chat/completions", "text": "/v1/completions"}


@pytest.fixture(scope="module")
def server(target):
    with serve(target, {"vanilla": None, "slow": SlowDraft(), "boom": Boom()}, max_num_seqs=2) as s:
        yield s


def post(base: str, route: str, body, **kw) -> httpx.Response:
    url = base + ROUTES[route]
    if isinstance(body, bytes):
        return httpx.post(url, content=body, headers={"content-type": "application/json"}, **kw)
    return httpx.post(url, json=body, **kw)


def assert_error(r: httpx.Response, status: int, param=None, words=(), code=None):
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    message = error["message"]
    assert message and "\n" not in message and "Traceback" not in message
    assert all(w in message for w in words), message
    assert error["param"] == param
    if code:
        assert error["code"] == code


@pytest.mark.parametrize("route,body,status,param,words", CASES, ids=[f"{i}-{c[2]}" for i, c in enumerate(CASES)])
def test_a_bad_request_gets_its_status_and_one_clear_sentence(server, route, body, status, param, words):
    r = post(server.base, route, body)
    assert_error(r, status, param, words)
    if status == 404:
        assert r.json()["error"]["code"] == "model_not_found"
    if "exceeds" in words:
        assert r.json()["error"]["code"] == "context_length_exceeded"


def test_the_server_keeps_serving_after_bad_requests_and_an_internal_error(server):
    r = post(server.base, "chat", {**CHAT, "method": "boom"})
    assert_error(r, 500)
    assert "internal error" in r.json()["error"]["message"] and "boom" not in r.text
    with httpx.stream("POST", server.base + ROUTES["chat"], json={**CHAT, "method": "boom", "stream": True}) as r:
        body = r.read().decode()
    assert '"error"' in body and body.rstrip().endswith("data: [DONE]")
    assert_error(httpx.get(server.base + "/v1/nope"), 404)
    for route, body in (("chat", CHAT), ("text", TEXT)):
        r = post(server.base, route, body)
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] >= 1
    assert server.runner.stats().free_slots == 2


def test_an_api_key_is_required_on_v1_routes_only(target):
    with serve(target, {"vanilla": None}, api_key="secret") as s:
        assert_error(post(s.base, "chat", CHAT), 401, code="invalid_api_key")
        assert_error(post(s.base, "chat", CHAT, headers={"Authorization": "Bearer wrong"}), 401)
        assert_error(httpx.get(s.base + "/v1/models"), 401)
        assert post(s.base, "chat", CHAT, headers={"Authorization": "Bearer secret"}).status_code == 200
        assert httpx.get(s.base + "/health").status_code == 200
        assert httpx.get(s.base + "/metrics").status_code == 200


def wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_a_full_queue_answers_429_and_frees_up(endless):
    with serve(endless, {"slow": SlowDraft()}, max_num_seqs=1, max_queue=1) as s:
        long = {**CHAT, "max_tokens": 300, "stream": True}
        with httpx.Client(base_url=s.base, timeout=30) as a, httpx.Client(base_url=s.base, timeout=30) as b, \
                a.stream("POST", ROUTES["chat"], json=long), b.stream("POST", ROUTES["chat"], json=long):
            wait_for(lambda: (s.runner.stats().running, s.runner.stats().waiting) == (1, 1))
            assert_error(post(s.base, "chat", CHAT), 429, code="queue_full")
        assert post(s.base, "chat", CHAT, timeout=30).status_code == 200
