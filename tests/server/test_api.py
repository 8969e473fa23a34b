"""Chat and text completions through the official openai client against a live server: streaming and not,
usage and its speculative block, batched greedy requests equal to their solo output, seeded sampling that
does not depend on the batch, stop strings, and a bounded load test."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
from openai import OpenAI

from specdec.config import SamplingParams
from tests.server.helpers import MODEL, serve

PROMPTS = ["hello world", "the quick brown fox", "what is the capital of France?", "speculative decoding drafts",
           "the lazy dog", "tokens and the target", "hello", "jumps over the lazy dog and the fox"]


@pytest.fixture(scope="module")
def server(target, noisy):
    with serve(target, {"vanilla": None, "noisy": noisy}, max_num_seqs=8, max_num_batched_tokens=256) as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    return OpenAI(base_url=server.base + "/v1", api_key="unused", max_retries=0, timeout=60)


def chat(client, prompt, max_tokens, stream=False, **kw):
    """Result of a chat completion, streamed or not (token ids asked for with the return_token_ids extension)."""
    kw["extra_body"] = {**kw.get("extra_body", {}), "return_token_ids": True}
    def create(**more):
        return client.chat.completions.create(model=MODEL, messages=messages(prompt), max_tokens=max_tokens, **kw,
                                              **more)
    if not stream:
        r = create()
        c = r.choices[0]
        return Out(c.message.content, c.finish_reason, r.usage, c.model_extra["token_ids"])
    out = Out("", None, None, None)
    for chunk in create(stream=True, stream_options={"include_usage": True}):
        if chunk.choices:
            out.add(chunk.choices[0].delta.content, chunk.choices[0])
        out.usage = chunk.usage or out.usage
    return out


def complete(client, prompt, max_tokens, stream=False, **kw):
    kw["extra_body"] = {**kw.get("extra_body", {}), "return_token_ids": True}
    def create(**more):
        return client.completions.create(model=MODEL, prompt=prompt, max_tokens=max_tokens, **kw, **more)
    if not stream:
        r = create()
        c = r.choices[0]
        return Out(c.text, c.finish_reason, r.usage, c.model_extra["token_ids"])
    out = Out("", None, None, None)
    for chunk in create(stream=True, stream_options={"include_usage": True}):
        if chunk.choices:
            out.add(chunk.choices[0].text, chunk.choices[0])
        out.usage = chunk.usage or out.usage
    return out


@dataclass
class Out:
    text: str
    finish: str | None
    usage: object
    token_ids: list[int] | None

    def add(self, text: str | None, choice) -> None:
        self.text += text or ""
        self.finish = choice.finish_reason or self.finish
        self.token_ids = (choice.model_extra or {}).get("token_ids") or self.token_ids


def messages(prompt):
    return [{"role": "user", "content": prompt}]


def metric(base: str, name: str, **labels) -> float:
    text = httpx.get(base + "/metrics").text
    want = ",".join(f'{k}="{v}"' for k, v in sorted({"model_name": MODEL, **labels}.items()))
    for line in text.splitlines():
        m = re.fullmatch(rf"{re.escape(name)}\{{(.*)\}} (\S+)", line)
        if m and ",".join(sorted(m.group(1).split(","))) == want:
            return float(m.group(2))
    return 0.0


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("method", ["vanilla", "noisy"])
def test_chat_returns_the_solo_greedy_text_with_consistent_usage(client, solo, target, stream, method):
    out = chat(client, PROMPTS[0], 24, stream, temperature=0, extra_body={"method": method})
    text, finish, usage = out.text, out.finish, out.usage
    want, ids = solo(messages(PROMPTS[0]), 24)
    assert (text, out.token_ids) == (want, ids) and finish in ("stop", "length")
    assert usage.completion_tokens == len(ids)
    assert usage.prompt_tokens == len(target.encode(messages(PROMPTS[0]), chat=True))
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    spec = usage.model_extra["speculative"]
    passes, accepted = spec["target_forward_passes"], spec["accepted_tokens"]
    assert spec["mean_accepted_length"] == pytest.approx((passes + accepted) / passes, abs=1e-3)
    assert 0 <= accepted <= spec["draft_tokens"]
    assert passes + accepted >= usage.completion_tokens       # emitted, minus what a stop or the limit cut
    assert spec["drafter"] == {}                               # neither drafter keeps counts of its own
    if method == "vanilla":
        assert spec["draft_tokens"] == 0 and spec["mean_accepted_length"] == 1.0
    else:
        assert spec["draft_tokens"] > 0


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_completions_take_plain_text_and_token_ids(client, solo, target, stream):
    out = complete(client, "the quick brown", 16, stream, temperature=0)
    want, ids = solo("the quick brown", 16, chat=False)
    assert (out.text, out.token_ids, out.finish, out.usage.completion_tokens) == (
        want, ids, "length" if len(ids) == 16 else "stop", len(ids))
    ids_prompt = target.encode("the quick brown", chat=False)
    assert complete(client, ids_prompt, 16, stream, temperature=0).token_ids == ids


def test_a_stop_string_ends_the_text_before_it(client, solo):
    want, _ = solo(messages(PROMPTS[2]), 40)
    stop = want[5:8]
    for stream in (False, True):
        out = chat(client, PROMPTS[2], 40, stream, temperature=0, stop=[stop, "never seen"])
        assert (out.text, out.finish) == (want[:want.find(stop)], "stop")


def test_models_lists_the_served_name_and_methods(client, server):
    (card,) = client.models.list().data
    assert card.id == MODEL and card.model_extra["methods"] == ["vanilla", "noisy"]
    assert httpx.get(server.base + "/health").status_code == 200


def test_eight_concurrent_greedy_requests_each_return_their_solo_output(server, client, solo):
    jobs = [(p, 8 + 5 * i, "noisy" if i % 4 else "vanilla") for i, p in enumerate(PROMPTS)]
    peak, done = [0.0], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], metric(server.base, "specdec:num_requests_running"))
            time.sleep(0.005)
    watcher = threading.Thread(target=watch)
    watcher.start()
    with ThreadPoolExecutor(8) as pool:
        out = list(pool.map(lambda j: chat(client, j[0], j[1], temperature=0, extra_body={"method": j[2]}), jobs))
    done.set()
    watcher.join()
    for (prompt, n, _), got in zip(jobs, out):
        want, ids = solo(messages(prompt), n)
        assert (got.text, got.token_ids, got.usage.completion_tokens) == (want, ids, len(ids)), prompt
    drafted = metric(server.base, "specdec:spec_decode_num_draft_tokens_total")
    accepted = metric(server.base, "specdec:spec_decode_num_accepted_tokens_total")
    assert 0 < accepted < drafted                               # drafts both accepted and rejected
    assert metric(server.base, "specdec:spec_decode_num_accepted_tokens_per_pos_total", position=0) > 0
    assert metric(server.base, "specdec:spec_decode_num_drafts_total") > 0
    assert peak[0] > 1
    assert metric(server.base, "specdec:time_to_first_token_seconds_count") >= 8


def test_a_seeded_sampled_request_is_the_same_alone_among_others_and_on_a_rerun(client, solo):
    kw = {"temperature": 0.9, "seed": 1234, "extra_body": {"method": "noisy", "top_k": 50}}
    alone = chat(client, PROMPTS[3], 30, **kw).token_ids
    with ThreadPoolExecutor(5) as pool:
        others = [pool.submit(chat, client, p, 30, temperature=1.0, seed=i) for i, p in enumerate(PROMPTS[4:])]
        among = pool.submit(chat, client, PROMPTS[3], 30, True, **kw).result().token_ids
        [f.result() for f in others]
    rerun = chat(client, PROMPTS[3], 30, **kw).token_ids
    _, want = solo(messages(PROMPTS[3]), 30, sampling=SamplingParams(temperature=0.9, top_k=50, seed=1234))
    assert alone == among == rerun == want


def test_load_64_requests_from_16_clients_none_lost_or_mixed_up(server, client, solo):
    """Bounded: 64 short greedy requests, streaming and not, chat and text, both methods."""
    jobs = [(PROMPTS[i % 8], 6 + (i % 5) * 4, i % 2 == 0, i % 3 == 0, "noisy" if i % 4 < 2 else "vanilla")
            for i in range(64)]

    def one(job):
        prompt, n, stream, text_route, method = job
        kw = {"temperature": 0, "extra_body": {"method": method}}
        return (complete if text_route else chat)(client, prompt, n, stream, **kw)

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        out = list(pool.map(one, jobs, timeout=120))
    assert time.monotonic() - started < 120
    for (prompt, n, _, text_route, _), got in zip(jobs, out):
        want, ids = solo(prompt if text_route else messages(prompt), n, chat=not text_route)
        assert (got.text, got.token_ids, got.usage.completion_tokens, got.finish) == (
            want, ids, len(ids), "length" if len(ids) == n else "stop")
    assert metric(server.base, "specdec:request_success_total", finished_reason="abort") == 0


def test_token_ids_are_left_out_unless_asked_for(server):
    body = {"model": MODEL, "prompt": "hello", "max_tokens": 3, "temperature": 0}
    choice = httpx.post(server.base + "/v1/completions", json=body).json()["choices"][0]
    assert "token_ids" not in choice and choice["finish_reason"] in ("stop", "length")


def test_suffix_learns_from_served_responses_unless_a_request_opts_out(target, solo):
    """The responses' trie is shared by every request's fork; "learn": false keeps a response out of it, and the
    greedy text is the solo text either way."""
    from specdec.drafters.suffix import SuffixDrafter
    suffix = SuffixDrafter(min_match=1)
    with serve(target, {"suffix": suffix}) as s:
        c = OpenAI(base_url=s.base + "/v1", api_key="unused", max_retries=0, timeout=60)
        private = chat(c, PROMPTS[0], 12, temperature=0, extra_body={"learn": False})
        assert private.token_ids == solo(PROMPTS[0], 12)[1] and not suffix.global_trie.responses
        shared = chat(c, PROMPTS[1], 12, temperature=0)
        assert shared.token_ids == solo(PROMPTS[1], 12)[1]
        assert list(suffix.global_trie.responses) == [shared.token_ids]
        r = httpx.post(s.base + "/v1/chat/completions", json={"messages": messages(PROMPTS[2]), "learn": "maybe"})
        assert r.status_code == 400 and "learn" in r.json()["error"]["message"]
