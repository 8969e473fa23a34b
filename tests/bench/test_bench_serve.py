"""specdec bench serve against a fake OpenAI-compatible server in this process (FastAPI + uvicorn on
127.0.0.1, in a thread): it streams a known number of tokens in chunks with known delays and returns usage
with or without a speculative block, or fails every n-th request. The benchmark is judged on counts, timings
consistent with the delays, ordered percentiles, its three files, appending a second label, the baseline ratio,
and its one-line refusals."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass, field

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from specdec.bench.questions import default_data_path, load_questions
from specdec.bench.serving.client import loopback_base_url
from specdec.bench.serving.prompts import round_robin_prompts
from specdec.cli import main
from specdec.errors import ConfigError


@dataclass
class Fake:
    tokens: int = 12              # completion tokens per request
    per_chunk: int = 3            # tokens per streamed chunk (a speculative server sends several)
    delay: float = 0.02           # seconds before each chunk
    usage: bool = True            # send usage when asked (stream_options.include_usage or not streaming)
    speculative: bool = True      # usage has a `speculative` block
    fail_every: int = 0           # every n-th request answers 500 (0: never)
    method_delay: dict = field(default_factory=dict)   # the delay for requests with this "method" field
    bodies: list = field(default_factory=list)


def fake_app(fake_ref: list[Fake]) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": "fake-model", "object": "model"}]}

    async def generate(request: Request, chat: bool):
        fake, body = fake_ref[0], await request.json()
        fake.bodies.append(body)
        if fake.fail_every and len(fake.bodies) % fake.fail_every == 0:
            return JSONResponse({"error": {"message": "boom", "type": "server_error", "param": None, "code": None}},
                                status_code=500)
        if not body.get("stream"):
            await asyncio.sleep(fake.delay * fake.tokens / fake.per_chunk)
            return {"choices": [{"index": 0, "text": "x"}], "usage": _usage(fake)}
        return StreamingResponse(_events(fake, body, chat), media_type="text/event-stream")

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        return await generate(request, True)

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await generate(request, False)

    return app


def _usage(fake: Fake) -> dict | None:
    if not fake.usage:
        return None
    u = {"prompt_tokens": 5, "completion_tokens": fake.tokens, "total_tokens": 5 + fake.tokens}
    if fake.speculative:
        passes = fake.tokens // fake.per_chunk
        u["speculative"] = {"mean_accepted_length": fake.per_chunk, "draft_tokens": 4 * passes,
                            "accepted_tokens": fake.tokens - passes, "target_forward_passes": passes}
    return u


async def _events(fake: Fake, body: dict, chat: bool):
    for _ in range(fake.tokens // fake.per_chunk):
        await asyncio.sleep(fake.method_delay.get(body.get("method"), fake.delay))
        text = "tok " * fake.per_chunk
        choice = {"index": 0, "delta": {"content": text}} if chat else {"index": 0, "text": text}
        yield f"data: {json.dumps({'choices': [choice]})}\n\n"
    if (body.get("stream_options") or {}).get("include_usage") and _usage(fake):
        yield f"data: {json.dumps({'choices': [], 'usage': _usage(fake)})}\n\n"
    yield "data: [DONE]\n\n"


@pytest.fixture(scope="module")
def server():
    """(base URL, a one-item list holding the current Fake) for a server that lives for this module."""
    fake_ref = [Fake()]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(fake_app(fake_ref), log_level="error", lifespan="off"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.started
    yield f"http://127.0.0.1:{port}/v1", fake_ref
    srv.should_exit = True
    thread.join(timeout=5)
    sock.close()


@pytest.fixture
def fake(server):
    server[1][0] = Fake()
    return server[1][0]


def bench(url: str, out, *flags: str) -> int:
    return main(["bench", "serve", "--url", url, "--out", str(out), "--concurrency", "1,2,4", "--requests", "4",
                 "--warmup", "1", "--max-tokens", "12", "--quiet", *flags])


def read(out) -> dict:
    return json.loads((out / "results.json").read_text())


def test_measures_each_level_with_no_lost_request(server, fake, tmp_path):
    assert bench(server[0], tmp_path, "--label", "spec", "--extra", '{"method": "pld"}') == 0
    run = read(tmp_path)["runs"][0]
    assert run["label"] == "spec" and run["settings"]["model"] == "fake-model"
    assert run["machine"]["cpu"] and run["command"].startswith("specdec bench serve")
    assert [lv["concurrency"] for lv in run["levels"]] == [1, 2, 4]
    assert len(fake.bodies) == 1 + 3 * 4          # warm-up + every level's requests, each sent once
    for lv in run["levels"]:
        assert lv["requests"] == lv["completed"] == 4 and lv["errors"] == {}
        assert lv["output_tokens"] == 4 * 12 and lv["token_source"] == "usage"
        for key in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms"):
            assert lv[key]["p50"] <= lv[key]["p99"]
        assert lv["ttft_ms"]["p50"] <= lv["e2e_ms"]["p50"]
        assert lv["speculative"]["mean_accepted_length"] == 3.0
        assert lv["speculative"]["draft_tokens_per_pass"] == 4.0
    body = fake.bodies[-1]
    assert body["method"] == "pld" and body["stream"] and body["stream_options"] == {"include_usage": True}
    assert body["model"] == "fake-model" and body["temperature"] == 0.0 and body["messages"][0]["role"] == "user"


def test_timings_follow_the_servers_delays(server, fake, tmp_path):
    """A request is 4 chunks 20 ms apart: ~80 ms, 12 tokens, so C clients give at most C x 150 tokens/s."""
    assert bench(server[0], tmp_path) == 0
    levels = {lv["concurrency"]: lv for lv in read(tmp_path)["runs"][0]["levels"]}
    for c, lv in levels.items():
        ideal = c * 12 / (4 * fake.delay)
        assert 0.25 * ideal < lv["output_tokens_per_s"] <= 1.05 * ideal
        assert lv["itl_ms"]["p50"] >= 0.9 * fake.delay * 1000
        assert lv["e2e_ms"]["p50"] >= 0.95 * 4 * fake.delay * 1000
        # time per output token: 3 gaps spread over the 11 tokens after the first
        assert lv["tpot_ms"]["p50"] == pytest.approx(3 * fake.delay * 1000 / 11, rel=0.6)
    assert levels[4]["output_tokens_per_s"] > 1.5 * levels[1]["output_tokens_per_s"]


def test_prompts_are_distinct_within_a_level_and_round_robin(server, fake, tmp_path):
    assert bench(server[0], tmp_path, "--endpoint", "completions") == 0
    prompts = [b["prompt"] for b in fake.bodies[1:]]
    assert len(set(prompts)) == len(prompts)
    order = round_robin_prompts()
    groups = {q.turns[0]: q.category for q in load_questions(default_data_path())}
    assert len({groups[p] for p in order[:6]}) == 6
    assert prompts[:4] == order[:4]


def test_a_second_label_appends_and_the_baseline_divides(server, fake, tmp_path):
    assert bench(server[0], tmp_path, "--label", "base") == 0
    fake.delay, fake.speculative = 0.01, False      # a faster configuration without a speculative block
    assert bench(server[0], tmp_path, "--label", "fast", "--baseline", "base") == 0
    data = read(tmp_path)
    assert [r["label"] for r in data["runs"]] == ["base", "fast"] and data["baseline"] == "base"
    assert all(lv["speculative"] is None for lv in data["runs"][1]["levels"])
    summary = (tmp_path / "summary.md").read_text()
    assert "| base | 1 |" in summary and "| fast | 4 |" in summary
    assert "relative to base" in summary and "| base | 1.00x | 1.00x | 1.00x |" in summary
    fast_row = next(line for line in summary.splitlines() if line.startswith("| fast | ") and "x |" in line)
    assert all(float(cell.rstrip("x")) > 1.2 for cell in fast_row.strip("| ").split(" | ")[1:])
    assert (tmp_path / "throughput.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert bench(server[0], tmp_path, "--label", "base") == 0       # a re-run replaces its label
    assert [r["label"] for r in read(tmp_path)["runs"]] == ["fast", "base"]


def test_failed_requests_are_counted_not_fatal(server, fake, tmp_path):
    fake.fail_every = 3
    assert bench(server[0], tmp_path) == 0
    levels = read(tmp_path)["runs"][0]["levels"]
    assert sum(lv["errors"].get("500", 0) for lv in levels) == 4     # requests 3, 6, 9, 12 of the 12 timed
    for lv in levels:
        assert lv["completed"] + sum(lv["errors"].values()) == lv["requests"] == 4
        assert lv["output_tokens"] == 12 * lv["completed"]
    assert "500: " in (tmp_path / "summary.md").read_text()


def test_prints_a_line_per_level_unless_quiet(server, fake, tmp_path, capsys):
    args = ["bench", "serve", "--url", server[0], "--out", str(tmp_path), "--concurrency", "1,2", "--requests", "2",
            "--warmup", "0", "--label", "spec"]
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("spec C=1: ") and "mean accepted length 3.00" in out[0] and "2/2 ok" in out[0]
    assert out[1].startswith("spec C=2: ") and out[2].startswith("wrote ")


def test_a_foreign_results_file_is_refused_before_any_request(server, fake, tmp_path, capsys):
    (tmp_path / "results.json").write_text('{"runs": 3}')
    assert bench(server[0], tmp_path) == 2
    assert "is not a results file of specdec bench serve" in capsys.readouterr().err and fake.bodies == []


def test_without_usage_chunks_are_counted(server, fake, tmp_path):
    fake.usage = False
    assert bench(server[0], tmp_path) == 0
    lv = read(tmp_path)["runs"][0]["levels"][0]
    assert lv["token_source"] == "chunks" and lv["output_tokens"] == 4 * 4 and lv["speculative"] is None


def test_without_streaming_only_end_to_end(server, fake, tmp_path):
    assert bench(server[0], tmp_path, "--no-stream") == 0
    lv = read(tmp_path)["runs"][0]["levels"][0]
    assert lv["output_tokens"] == 48 and lv["ttft_ms"] is None and lv["e2e_ms"]["p50"] > 0
    assert "stream_options" not in fake.bodies[-1]


def compare(url: str, out, *flags: str) -> int:
    return main(["bench", "serve", "--compare", "slow", url, '{"method": "slow"}', "--compare", "fast", url,
                 '{"method": "fast"}', "--out", str(out), "--concurrency", "1,2", "--requests", "2", "--rounds", "3",
                 "--warmup", "1", "--max-tokens", "12", "--baseline", "slow", "--quiet", *flags])


def test_compared_configurations_run_interleaved_round_by_round(server, fake, tmp_path):
    """Each level: 3 rounds, both configurations back to back in each, the first rotating; both get the same
    fresh prompts in a round; a configuration twice as fast measures about 2x in every round."""
    fake.method_delay = {"slow": 0.04, "fast": 0.02}
    assert compare(server[0], tmp_path) == 0
    timed = fake.bodies[2:]                          # after one warm-up request each
    assert [b["method"] for b in fake.bodies[:2]] == ["slow", "fast"]
    assert len(timed) == 2 * 3 * 2 * 2               # levels x rounds x configurations x requests
    blocks = [timed[i:i + 2] for i in range(0, len(timed), 2)]
    assert [b[0]["method"] for b in blocks] == ["slow", "fast", "fast", "slow", "slow", "fast"] * 2
    assert all(len({x["method"] for x in b}) == 1 for b in blocks)
    prompts = [tuple(sorted(x["messages"][0]["content"] for x in b)) for b in blocks]
    assert all(prompts[i] == prompts[i + 1] for i in range(0, len(prompts), 2))     # a round's pair: same prompts
    assert len(set(prompts)) == len(prompts) // 2                                   # fresh prompts every round
    data = read(tmp_path)
    slow, fast = data["runs"]
    assert slow["interleaved"] == fast["interleaved"] and slow["interleaved"]["labels"] == ["slow", "fast"]
    for a, b in zip(slow["levels"], fast["levels"]):
        assert a["requests"] == b["requests"] == 6 and len(a["rounds"]) == len(b["rounds"]) == 3
        assert min(a["rounds"]) <= a["output_tokens_per_s"] <= max(a["rounds"])
        assert all(1.4 < y / x < 2.2 for x, y in zip(a["rounds"], b["rounds"]))
    summary = (tmp_path / "summary.md").read_text()
    fast_ratio = next(line for line in summary.splitlines() if line.startswith("| fast | ") and "x [" in line)
    for cell in fast_ratio.strip("| ").split(" | ")[1:]:
        ratio, low, high = (float(x) for x in cell.replace("x [", " ").rstrip("]").replace(",", "").split())
        assert 1.4 < low <= ratio <= high < 2.2
    slow_tps = next(line for line in summary.splitlines() if line.startswith("| slow | ") and " [" in line)
    assert slow_tps.count("[") == 2                  # the per-round range of both levels


@pytest.mark.parametrize("flags", [("--compare", "only-a-label"), ("--compare", "a", "b", "{}", "extra-value"),
                                   ("--rounds", "0")])
def test_bad_compare_flags_are_one_line(flags, server, tmp_path, capsys):
    assert compare(server[0], tmp_path, *flags) == 2
    err = capsys.readouterr().err
    assert err.startswith("specdec: error: ") and err.count("\n") == 1


def test_compare_refuses_a_repeated_label_and_a_url_beside_it(server, tmp_path, capsys):
    both = ["bench", "serve", "--url", server[0], "--compare", "a", server[0], "--out", str(tmp_path)]
    twice = ["bench", "serve", "--compare", "a", server[0], "--compare", "a", server[0], "--out", str(tmp_path)]
    for argv, words in ((both, "were both given"), (twice, "repeat"), (["bench", "serve", "--out", str(tmp_path)],
                                                                      "no server given")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1


@pytest.mark.parametrize("url", ["http://example.com:8000/v1", "http://10.0.0.1:8000/v1",
                                 "http://127.0.0.1.example.com/v1", "ftp://127.0.0.1/v1"])
def test_refuses_a_server_elsewhere(url, tmp_path, capsys):
    assert bench(url, tmp_path) == 2
    err = capsys.readouterr().err
    assert err.startswith("specdec: error: --url") and err.count("\n") == 1
    assert not (tmp_path / "results.json").exists()


def test_loopback_urls_are_accepted():
    assert loopback_base_url("http://127.0.0.2:8000") == "http://127.0.0.2:8000/v1"
    assert loopback_base_url("http://localhost:8000/v1/") == "http://localhost:8000/v1"
    assert loopback_base_url("http://[::1]:8001/v1") == "http://[::1]:8001/v1"
    with pytest.raises(ConfigError):
        loopback_base_url("http://192.168.1.5/v1")


@pytest.mark.parametrize("flags", [("--extra", "[1]"), ("--concurrency", "0,2"), ("--concurrency", "a"),
                                   ("--requests", "2"), ("--endpoint", "embeddings"), ("--max-tokens", "0")])
def test_bad_flags_are_one_line(flags, server, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        code = bench(server[0], tmp_path, *flags)
        raise SystemExit(code)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("specdec: error: ") and err.count("\n") == 1


def test_no_server_is_one_line(tmp_path, capsys):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()                                    # nothing listens there now
    for warmup in ("1", "0"):
        assert bench(f"http://127.0.0.1:{port}/v1", tmp_path, "--model", "m", "--warmup", warmup) == 2
        assert capsys.readouterr().err.startswith("specdec: error: no server answers")


def test_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "serve", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--url", "--concurrency", "--requests", "--extra", "--label", "--baseline", "--no-stream", "--compare",
                 "--rounds"):
        assert flag in out
