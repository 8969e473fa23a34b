"""Which EAGLE training variant helps? Trains EAGLE heads that differ in one setting on the same data and steps.

Every head learns from the first N records of a responses file (`responses.jsonl` as `specdec train` writes it:
prompt_ids + the target's own response_ids), with the same seed, steps and batches. A variant is
NAME:fuse=2.15:reg=1:cls=0.1 (fuse: target layers whose residual streams join the final feature, EAGLE-3 style;
reg / cls: weights of the feature regression and the cross-entropy; left out: the defaults). Prints each head's
held-out metrics (every 20th record is held out), then decodes up to 12 held-out prompts greedily with fixed
trees (depth 6, topk 4, 16 nodes) and prints the mean accepted length and equality with vanilla.

    python scripts/fuse_compare.py --responses responses.jsonl --records 800 --steps 250 --out /tmp/fuse \
        --variants plain fused:fuse=2.15
"""

from __future__ import annotations

import argparse
import json
from itertools import islice
from pathlib import Path

from specdec.drafters import make_drafter
from specdec.engine import SpeculativeDecoder
from specdec.models.load import load_model
from specdec.train.features import split_held_out
from specdec.train.loop import LoopConfig
from specdec.train.pipeline import TrainSettings, train_drafter


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--responses", type=Path, required=True)
    ap.add_argument("--records", type=int, default=800)
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--token-budget", type=int, default=4096)
    ap.add_argument("--variants", nargs="+", default=["plain", "fused:fuse=2.15"],
                    help="NAME[:fuse=L1.L2][:reg=W][:cls=W] per head")
    ap.add_argument("--target", default="smollm2-135m")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    target = load_model(args.target)
    with args.responses.open() as f:
        records = [{"prompt_ids": r["prompt_ids"], "response_ids": r["response_ids"]}
                   for r in map(json.loads, islice(f, args.records))]
    names = []
    for variant in args.variants:
        name, *opts = variant.split(":")
        opts = dict(o.split("=") for o in opts)
        names.append(name)
        loop = LoopConfig(steps=args.steps, lr=1e-3, token_budget=args.token_budget, eval_every=args.steps)
        settings = TrainSettings(eval_prompts=0, work_dir=args.out / "work", loop=loop,
                                 fuse_layers=tuple(int(x) for x in opts.get("fuse", "").split(".") if x),
                                 feature_weight=float(opts.get("reg", 1.0)), cls_weight=float(opts.get("cls", 0.1)))
        summary = train_drafter("eagle", target, records, args.out / name, settings, progress=False)
        print(name, json.dumps(summary["held_out_metrics"]), flush=True)
    held = split_held_out(records)[1][:12]
    vanilla = SpeculativeDecoder(target)
    refs = [vanilla.generate(r["prompt_ids"], 64).token_ids for r in held]
    for name in names:
        drafter = make_drafter("eagle", target, {"drafter": str(args.out / name), "fit": False, "depth": 6,
                                                 "topk": 4, "nodes": 16})
        emitted = forwards = same = 0
        for r, ref in zip(held, refs):
            res = SpeculativeDecoder(target, drafter).generate(r["prompt_ids"], 64)
            emitted, forwards = emitted + res.stats.emitted_tokens, forwards + res.stats.target_forwards
            same += res.token_ids == ref
        print(f"{name}: mean accepted length {emitted / forwards:.3f} on {len(held)} held-out prompts "
              f"(64 tokens, 16-node trees), identical to vanilla {same}/{len(held)}")


if __name__ == "__main__":
    main()
