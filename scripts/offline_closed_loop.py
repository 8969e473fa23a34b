"""The serving benchmark's work without HTTP: C requests in a closed loop in one `Engine`, in one process, so two
configurations can be alternated on the same prompts and this machine's drift between server runs drops out.

    python scripts/offline_closed_loop.py --dtype bfloat16 --concurrency 8,16 --rounds 2 vanilla pld pld@load-aware

Each configuration is METHOD or METHOD@load-aware (draft budgets from the measured cost surface, as
`specdec serve --speculation load-aware`). Prompts are the serving benchmark's (Spec-Bench first turns,
round-robin over the groups, max(8, 2C) per level, chat template), 64 new tokens each, greedy, 16 slots, 512 rows
a pass (`--max-num-batched-tokens 512,2048` alternates pass sizes as well). Prints one line per (round, level,
pass size, configuration): output tokens/s, draft tokens per request-step, and the seconds spent in passes that
carried prompt chunks and in passes that did not.
"""

from __future__ import annotations

import argparse
import time

from specdec import Engine, Request, SamplingParams, load_model, make_drafter
from specdec.bench.serving.prompts import prompts_for_level, round_robin_prompts
from specdec.load_aware import LoadAwareBudget, load_or_measure


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("configs", nargs="+", help="METHOD or METHOD@load-aware (vanilla, pld, eagle+pld, ...)")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--max-num-batched-tokens", default="512", help="rows a pass, or several, comma-separated")
    args = ap.parse_args()
    target = load_model(args.model, dtype=args.dtype, quiet=True)
    order = round_robin_prompts()
    drafters, surface = {}, None
    for cfg in args.configs:
        method, _, mode = cfg.partition("@")
        if mode not in ("", "load-aware"):
            raise SystemExit(f"{cfg!r}: accepted METHOD or METHOD@load-aware")
        if mode and surface is None:
            surface = load_or_measure(target)[0]
        options = {"fit": False} if mode and method not in ("vanilla", "pld") else {}
        drafters[cfg] = None if method == "vanilla" else make_drafter(method, target, options)
    slots = target.runtime.new_slots(2048, 16)          # allocated once, shared by every run
    for rnd in range(args.rounds):
        for c in (int(x) for x in args.concurrency.split(",")):
            ids = [target.encode(p, chat=True) for p in prompts_for_level(order, max(8, 2 * c))]
            for rows in (int(x) for x in args.max_num_batched_tokens.split(",")):
                for cfg in args.configs:
                    print(f"round {rnd} C={c:2d} rows={rows} {cfg:24s} "
                          + run(target, slots, ids, c, drafters[cfg], surface if cfg.endswith("@load-aware") else None,
                                args.max_new_tokens, rows), flush=True)


def run(target, slots, ids, concurrency, drafter, surface, max_new_tokens, rows) -> str:
    stats = {"draft_tokens": 0, "decoding": 0, "prefill_s": 0.0, "decode_s": 0.0}

    def on_step(r):
        stats["draft_tokens"] += r.draft_tokens
        stats["decoding"] += r.decoding
        stats["prefill_s" if r.prefilling else "decode_s"] += r.seconds

    engine = Engine(target, max_num_seqs=16, max_num_batched_tokens=rows, max_model_len=2048, on_step=on_step,
                    budget=LoadAwareBudget(surface) if surface is not None else None)
    engine._slots = slots
    queue, tokens = list(ids), 0

    def add():
        engine.add(Request(queue.pop(0), max_new_tokens, SamplingParams(), (), drafter.fork() if drafter else None))

    for _ in range(min(concurrency, len(queue))):
        add()
    start = time.perf_counter()
    while engine.has_work:
        for result in engine.step():
            tokens += len(result.token_ids)
            if queue:
                add()
    seconds = time.perf_counter() - start
    return (f"{tokens / seconds:6.1f} tokens/s ({tokens} in {seconds:.1f} s), draft tokens per request-step "
            f"{stats['draft_tokens'] / max(1, stats['decoding']):.2f}, passes with prompt chunks "
            f"{stats['prefill_s']:.1f} s, without {stats['decode_s']:.1f} s")


if __name__ == "__main__":
    main()
