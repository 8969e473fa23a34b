"""`specdec serve`: load a model and its drafting methods, print one line, serve the OpenAI API with uvicorn
until SIGTERM / Ctrl-C (then drain)."""

from __future__ import annotations

import argparse

from specdec.commands import key_value
from specdec.errors import ConfigError


class _OneLineParser(argparse.ArgumentParser):
    """Bad flags are one line, `specdec: error: ...`, and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"specdec: error: {message} (see specdec serve --help)\n")


def build_serve_parser() -> argparse.ArgumentParser:
    from specdec.cli import _add_model_args
    p = _OneLineParser(prog="specdec serve", description="An OpenAI-compatible server (chat and text completions, "
                       "streaming, metrics) over specdec's batched engine; see docs/serving.md.")
    p.set_defaults(command="serve")
    _add_model_args(p)
    p.add_argument("--method", action="append", default=[], metavar="NAME[,NAME...]",
                   help="drafting methods to load (repeatable or comma-separated; the first is the default, a request "
                        "may pick another with the field \"method\"); default vanilla")
    p.add_argument("-o", "--method-option", dest="options", action="append", type=key_value, default=[],
                   metavar="KEY=VALUE", help="drafter option for every loaded method but vanilla (repeatable)")
    p.add_argument("--rule", default="exact", help="verification rule: exact (default), rejection or typical (lossy)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--max-num-seqs", type=int, default=16, help="requests decoded together (default 16)")
    p.add_argument("--max-num-batched-tokens", type=int, default=512,
                   help="rows of one target pass: decode rows, draft tokens and prompt chunks (default 512)")
    p.add_argument("--max-model-len", type=int, default=4096,
                   help="prompt + completion tokens per request (default 4096, capped by the model's context "
                        "window); the KV cache holds max-num-seqs x max-model-len tokens")
    p.add_argument("--speculation", default="load-aware", choices=["load-aware", "fixed"],
                   help="load-aware (default): each step's draft sizes are chosen for the whole batch from a cost "
                        "surface measured once per machine and model (docs/batching.md), and drafters' own 'fit' "
                        "is off unless -o fit=... says otherwise; fixed: every method drafts as its options say")
    p.add_argument("--max-queue", type=int, default=256, help="requests waiting for a slot before 429 (default 256)")
    p.add_argument("--default-max-tokens", type=int, default=256,
                   help="completion tokens of a request that names none (default 256, capped by the context)")
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on /v1 routes")
    p.add_argument("--drain-timeout", type=float, default=30.0,
                   help="seconds requests in flight get at shutdown before they are aborted (default 30)")
    p.add_argument("--served-model-name", default=None, help="the model name clients send (default: --model)")
    return p


def run_serve(args) -> int:
    from specdec.models.load import load_model
    from specdec.server import Methods, ServerConfig, create_app
    from specdec.server.methods import method_list
    from specdec.server.runner import on_passing_thread

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is invalid; accepted: 0 to 65535")
    config = ServerConfig(args.served_model_name or args.model, max_num_seqs=args.max_num_seqs,
                          max_num_batched_tokens=args.max_num_batched_tokens, max_model_len=args.max_model_len,
                          rule=args.rule, max_queue=args.max_queue, default_max_tokens=args.default_max_tokens,
                          api_key=args.api_key, drain_timeout=args.drain_timeout, speculation=args.speculation)
    names = method_list(args.method)
    defaults = {"fit": False} if args.speculation == "load-aware" else {}

    def load():                  # on a thread of its own: tensor work belongs to the engine's thread (runner.py)
        target = load_model(args.model, dtype=args.dtype, device=args.device)
        return target, Methods.load(names, target, dict(args.options), defaults=defaults)

    target, methods = on_passing_thread(load)
    app = create_app(target, methods, config)
    print(start_line(args, target, names, app.state.runner.max_model_len), flush=True)
    _serve(app, args)
    return 0


def start_line(args, target, methods: list[str], max_model_len: int) -> str:
    batched = target.runtime.supports_batch
    line = (f"specdec serve: model {args.model} ({args.dtype}, {args.device}, "
            f"{'native' if batched else 'transformers'} runtime) | methods {methods[0]} (default)"
            + "".join(f", {m}" for m in methods[1:])
            + f" | {args.speculation} speculation | {args.max_num_seqs} slots, {args.max_num_batched_tokens} tokens "
              f"a pass, max model len {max_model_len} | http://{args.host}:{args.port}/v1 as "
              f"{args.served_model_name or args.model!r}")
    if not batched:
        line += (" | transformers runtime: requests are batched, but each pass scores them one after another "
                 "(chains only)")
    return line


def _serve(app, args) -> None:
    import uvicorn

    from specdec.server.lifecycle import DrainingServer
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    DrainingServer(config, app.state.runner, args.drain_timeout).run()

