"""A client that goes away frees its slot within a step; shutdown drains (503 for new requests, the drain timeout
for those in flight, then "abort"); the `specdec serve` command line."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import httpx
import pytest
from openai import OpenAI

from specdec.cli import main
from specdec.commands.serve import start_line
from specdec.config import SamplingParams
from specdec.engine import SpeculativeDecoder
from specdec.server.lifecycle import DrainingServer
from tests.server.conftest import SlowDraft
from tests.server.helpers import MODEL, serve
from tests.server.test_api import metric
from tests.server.test_errors import wait_for

MESSAGES = [{"role": "user", "content": "hello world"}]


def solo_text(target, n: int) -> str:
    ids = target.encode(MESSAGES, chat=True)
    return target.decode(SpeculativeDecoder(target).generate(ids, n, SamplingParams()).token_ids)


@pytest.fixture(scope="module")
def one_slot(endless):
    with serve(endless, {"vanilla": None, "slow": SlowDraft()}, max_num_seqs=1) as s:
        yield s, OpenAI(base_url=s.base + "/v1", api_key="unused", max_retries=0, timeout=30)


def open_stream(client, n: int = 300):
    return client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=n, temperature=0, stream=True,
                                          extra_body={"method": "slow"})


def test_a_closed_stream_frees_its_slot_and_the_next_request_completes(one_slot, endless):
    s, client = one_slot
    stream = open_stream(client)
    chunks = [next(stream) for _ in range(3)]
    assert chunks[0].choices[0].delta.role == "assistant"
    wait_for(lambda: metric(s.base, "specdec:free_slots") == 0)
    stream.close()
    wait_for(lambda: metric(s.base, "specdec:free_slots") == 1, seconds=2)
    assert metric(s.base, "specdec:request_success_total", finished_reason="abort") == 1
    r = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=12, temperature=0)
    assert r.choices[0].message.content == solo_text(endless, 12)


def test_a_waiting_request_takes_the_slot_of_a_closed_stream_unaffected(one_slot, endless):
    s, client = one_slot
    stream = open_stream(client)
    next(stream)
    waiting = {}
    other = threading.Thread(target=lambda: waiting.update(r=client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=10, temperature=0)))
    other.start()
    wait_for(lambda: metric(s.base, "specdec:num_requests_waiting") == 1)
    stream.close()
    other.join(timeout=20)
    assert waiting["r"].choices[0].message.content == solo_text(endless, 10)
    wait_for(lambda: metric(s.base, "specdec:free_slots") == 1, seconds=2)


def test_a_client_that_stops_waiting_for_a_whole_answer_frees_its_slot(one_slot):
    s, _ = one_slot
    aborted = metric(s.base, "specdec:request_success_total", finished_reason="abort")
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 300, "temperature": 0, "method": "slow"}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(s.base + "/v1/chat/completions", json=body, timeout=httpx.Timeout(5, read=0.3))
    wait_for(lambda: metric(s.base, "specdec:free_slots") == 1, seconds=2)
    assert metric(s.base, "specdec:request_success_total", finished_reason="abort") == aborted + 1


def test_shutdown_refuses_new_requests_lets_short_ones_finish_and_aborts_the_rest(endless):
    with serve(endless, {"slow": SlowDraft()}, server_class=DrainingServer, max_num_seqs=2, drain_timeout=1.0) as s:
        client = OpenAI(base_url=s.base + "/v1", api_key="unused", max_retries=0, timeout=30)
        finish = {}

        def run(name, n):
            r = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=n, temperature=0)
            finish[name] = (r.choices[0].finish_reason, r.usage.completion_tokens)
        threads = [threading.Thread(target=run, args=(name, n)) for name, n in (("short", 20), ("long", 300))]
        for t in threads:
            t.start()
        wait_for(lambda: s.runner.stats().running == 2)
        s.server.handle_exit(signal.SIGTERM, None)
        wait_for(lambda: httpx.get(s.base + "/health").status_code == 503, seconds=1)
        r = httpx.post(s.base + "/v1/chat/completions", json={"model": MODEL, "messages": MESSAGES})
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
        for t in threads:
            t.join(timeout=20)
        assert finish["short"] == ("length", 20)
        assert finish["long"][0] == "abort" and 0 < finish["long"][1] < 300
        s.thread.join(timeout=20)
        assert not s.thread.is_alive()


def test_serve_help_and_bad_flags(capsys):
    out = subprocess.run([sys.executable, "-m", "specdec.cli", "serve", "--help"], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0 and "--max-num-seqs" in out.stdout and "--drain-timeout" in out.stdout
    for argv in (["--bogus"], ["--port", "abc"], ["--max-num-seqs", "0"], ["--method", "vanilla,nope"],
                 ["--rule", "loose"], ["--port", "70000"]):
        with pytest.raises(SystemExit) as stop:
            code = main(["serve", *argv])
            raise SystemExit(code)
        assert stop.value.code == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("specdec: error:") and err.count("\n") == 1, err


def test_the_start_line_names_model_methods_slots_and_the_transformers_caveat():
    args = SimpleNamespace(model="m", dtype="float32", device="cpu", max_num_seqs=4, max_num_batched_tokens=64,
                           host="127.0.0.1", port=8000, served_model_name=None, speculation="load-aware")
    native = SimpleNamespace(runtime=SimpleNamespace(supports_batch=True))
    adapter = SimpleNamespace(runtime=SimpleNamespace(supports_batch=False))
    line = start_line(args, native, ["vanilla", "pld"], 2048)
    assert "\n" not in line and "vanilla (default), pld" in line and "4 slots" in line and "float32" in line
    assert "load-aware speculation" in line
    assert "one after another" not in line
    assert "one after another" in start_line(args, adapter, ["vanilla"], 2048)


@pytest.mark.real_model
def test_specdec_serve_on_the_default_model_answers_and_drains_on_sigterm():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "specdec.cli", "serve", "--method", "vanilla,pld", "--port",
                             str(port), "--max-num-seqs", "2", "--max-model-len", "512", "--drain-timeout", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("specdec serve: model smollm2-135m") and "vanilla (default), pld" in line
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300          # a fresh cache measures the cost surface first
        while True:
            try:
                if httpx.get(base + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read()          # ended: its stderr is complete, read it
            assert time.monotonic() < deadline, "the server was not healthy after 300 s"   # never read a live pipe
            time.sleep(0.2)
        client = OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=60)
        r = client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": "Hi!"}],
                                           max_tokens=8, temperature=0, extra_body={"method": "pld"})
        assert r.choices[0].message.content and r.usage.completion_tokens <= 8
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_loading_runs_on_a_thread_that_ends_and_hands_back_its_result_or_error():
    """`specdec serve` loads on a passing thread so that the engine's thread is the only one with an OpenMP pool."""
    from specdec.errors import ConfigError
    from specdec.server.runner import on_passing_thread
    seen = []
    assert on_passing_thread(lambda: seen.append(threading.current_thread()) or 7) == 7
    assert seen[0] is not threading.current_thread() and not seen[0].is_alive()
    with pytest.raises(ConfigError, match="no such model"):
        on_passing_thread(lambda: (_ for _ in ()).throw(ConfigError("no such model")))
