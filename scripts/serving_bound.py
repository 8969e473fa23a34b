"""How fast one concurrency level of the serving benchmark could go on this machine if every pass were full and
nothing but the target's passes took time: the work of the level (its prompts prefilled, then its tokens decoded
C at a time) priced with passes timed here, one by one, on the real prompts.

    python scripts/serving_bound.py --dtype bfloat16 --concurrency 16 --speculative 1.39:0.86

- prefill: every prompt of the level (Spec-Bench first turns, chat template, the serving benchmark's order)
  through the target in chunks of --chunk rows, timed as it runs;
- decode: the median of one pass over C requests, each after its own prompt plus half the new tokens, with one
  row each (vanilla) and with two rows each; a pass of 1 + d rows per request is priced on the line through
  those two;
- bound = prefill + (requests x new tokens) / (C x kept) passes x pass(1 + d), for vanilla (kept 1, d 0) and for
  each --speculative KEPT:D (mean tokens kept a pass and draft tokens a pass per request, as the serving
  benchmark's summary reports them).

What the bound leaves out, so a server measures below it: passes that are not full (requests joining, the last
requests of a level finishing alone), drafting, verification, the HTTP server and its client on the same cores.
"""

from __future__ import annotations

import argparse
import time

import torch

from specdec import load_model
from specdec.bench.machine import cpu_model, usable_cores
from specdec.bench.serving.prompts import prompts_for_level, round_robin_prompts
from specdec.models.runtime import Segment
from specdec.timing import time_calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--requests", type=int, default=None, help="requests of the level (default max(8, 2C), "
                                                                 "as specdec bench serve)")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--chunk", type=int, default=512, help="prompt rows a pass (specdec serve's default)")
    ap.add_argument("--speculative", action="append", default=[], metavar="KEPT:D",
                    help="mean tokens kept a pass and draft tokens a pass per request (repeatable)")
    args = ap.parse_args()
    try:
        specs = [_spec(text) for text in args.speculative]
    except ValueError as e:
        ap.error(str(e))        # one line, exit 2
    for name in ("concurrency", "max_new_tokens", "chunk"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} {getattr(args, name)} is invalid; accepted: an integer >= 1")
    c, new = args.concurrency, args.max_new_tokens
    target = load_model(args.model, dtype=args.dtype, quiet=True)
    rt = target.runtime
    ids = [target.encode(p, chat=True) for p in prompts_for_level(round_robin_prompts(), args.requests or max(8, 2 * c))]
    slots = rt.new_slots(max(len(p) for p in ids) + new + 4, c)

    with torch.inference_mode():
        rt.forward(torch.tensor([ids[0][:args.chunk]]), slots[0], logits="none")     # warm-up
        prefill = 0.0
        for p in ids:
            slots[0].crop(0)
            for lo in range(0, len(p), args.chunk):
                t0 = time.perf_counter()
                rt.forward(torch.tensor([p[lo:lo + args.chunk]]), slots[0], logits="last")
                prefill += time.perf_counter() - t0
        filler = torch.zeros(1, new // 2, dtype=torch.long)
        for slot, p in zip(slots, ids):
            slot.crop(0)
            rt.forward(torch.cat([torch.tensor([p]), filler], 1), slot, logits="none")
        contexts = [s.length for s in slots]
        per_rows = _pass_medians(rt, slots, (1, 2))

    n_tokens = len(ids) * new
    tokens = sum(len(p) for p in ids)
    print(f"{cpu_model()}, {usable_cores()} cores | {args.model} {args.dtype} | C={c}, {len(ids)} requests x {new} new "
          f"tokens | torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"prefill: {tokens} prompt tokens in chunks of {args.chunk}: {prefill:.2f} s "
          f"({prefill / tokens * 1e3:.2f} ms a token)")
    print(f"decode pass over {c} requests (contexts {min(contexts)}-{max(contexts)}): "
          f"{per_rows[1] * 1e3:.1f} ms with 1 row each, {per_rows[2] * 1e3:.1f} ms with 2")
    for label, kept, d in [("vanilla", 1.0, 0.0)] + specs:
        passes = n_tokens / (c * kept)
        decode = passes * (per_rows[1] + d * (per_rows[2] - per_rows[1]))
        total = prefill + decode
        print(f"{label:30s} prefill {prefill:5.2f} s + {passes:5.0f} passes {decode:5.2f} s = {total:5.2f} s: "
              f"at most {n_tokens / total:6.1f} tokens/s (prefill {prefill / total:.0%} of the time)")


def _pass_medians(rt, slots, row_counts: tuple[int, ...], repeats: int = 9) -> dict[int, float]:
    """Median seconds of one pass over every slot with k new rows each, for each k (timed interleaved, the slots
    rolled back after each pass)."""
    def one_pass(k: int) -> None:
        rt.forward_batch([Segment(torch.zeros(1, k, dtype=torch.long), s) for s in slots])
        for s in slots:
            s.rollback(k)

    timed = time_calls({k: (lambda k=k: one_pass(k)) for k in row_counts}, rt.device, repeats=repeats, warmup=2)
    return {k: t.median for k, t in timed.items()}


def _spec(text: str) -> tuple[str, float, float]:
    try:
        kept, d = (float(x) for x in text.split(":"))
    except ValueError:
        raise ValueError(f"--speculative {text!r} is invalid; accepted: KEPT:D, e.g. 1.39:0.86") from None
    if kept < 1 or d < 0:
        raise ValueError(f"--speculative {text!r} is invalid; accepted: KEPT >= 1 and D >= 0")
    return f"kept {kept:.2f}, drafts {d:.2f} a pass", kept, d


if __name__ == "__main__":
    main()
