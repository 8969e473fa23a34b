"""A tiny model with a tiny tokenizer, and a specdec server for it on 127.0.0.1 in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import replace

import uvicorn

from specdec.server import Methods, ServerConfig, create_app
from tests.tiny import tiny_target, tiny_tokenizer

MODEL = "tiny-chat"


def tiny_chat_model(seed: int = 3):
    """(LoadedModel with a ChatML tokenizer and <|im_end|> as end of sequence, its transformers model)."""
    tok = tiny_tokenizer()
    target, hf = tiny_target(vocab=len(tok), layers=2, hidden=32, scale=3.0, seed=seed, context=512)
    return replace(target, tokenizer=tok, eos_token_ids={tok.eos_token_id}), hf


class RunningServer:
    def __init__(self, app, server: uvicorn.Server, thread: threading.Thread, port: int):
        self.app, self.server, self.thread, self.port = app, server, thread, port
        self.base = f"http://127.0.0.1:{port}"

    @property
    def runner(self):
        return self.app.state.runner


@contextmanager
def serve(target, methods: dict, server_class=uvicorn.Server, **config):
    """Start create_app(target, methods, ...) under uvicorn on a free port; stop it on exit. Drafts are as the
    methods' options say unless the test asks for load-aware budgets (on tiny models drafting rarely pays)."""
    config.setdefault("speculation", "fixed")
    app = create_app(target, Methods.from_prototypes(methods), ServerConfig(MODEL, **config))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    cfg = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    server = (server_class(cfg) if server_class is uvicorn.Server
              else server_class(cfg, app.state.runner, config.get("drain_timeout", 30.0)))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not (server.started and app.state.runner.ready.is_set()):
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield RunningServer(app, server, thread, port)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
