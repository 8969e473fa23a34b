"""How fast does training data reach the device? Times feature extraction and batch assembly for the default target.

1. extraction: `extract_features` over the first --records self-answered records, once per --batch-tokens value
   (1 = one sequence per target pass; more = right-padded multi-sequence passes);
2. batches: one epoch of --token-budget batches of those sequences, gathered by a `SequenceStore` on --device,
   against the host-side assembly the training loop used before (one copy per sequence into zeroed float32
   tensors, then a copy to the device).

    python scripts/train_data_speed.py --responses responses.jsonl --records 64 --batch-tokens 1,4096
    python scripts/train_data_speed.py --responses responses.jsonl --device cuda --batch-tokens 1,65536

--responses is a responses.jsonl written by `specdec train` (its work directory) or by scripts/gpu_session.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from specdec.models.load import load_model  # noqa: E402
from specdec.train.batches import SequenceStore, batch_plan, reference_batch  # noqa: E402
from specdec.train.features import extract_features  # noqa: E402


def host_copy(batch, device):
    """The earlier path: a batch assembled on the host, then copied to the device."""
    return [x.to(device) for x in (batch.tokens, batch.features, batch.valid, batch.extras) if x is not None]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--responses", required=True)
    ap.add_argument("--records", type=int, default=64)
    ap.add_argument("--batch-tokens", default="1,4096")
    ap.add_argument("--fuse-layers", default="2,15")
    ap.add_argument("--token-budget", type=int, default=8192)
    ap.add_argument("--keep-prompt", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="smollm2-135m")
    args = ap.parse_args()
    target = load_model(args.model, device=args.device, quiet=True)
    device = target.runtime.device
    with open(args.responses, encoding="utf-8") as f:
        records = [json.loads(line) for _, line in zip(range(args.records), f)]
    extra = tuple(int(i) for i in args.fuse_layers.split(",") if i)
    tokens = sum(min(1280, len(r["prompt_ids"]) + len(r["response_ids"])) for r in records)
    print(f"{device}: {len(records)} records, {tokens} tokens, fused layers {extra}")
    seqs = None
    with tempfile.TemporaryDirectory() as tmp:
        for bt in (int(x) for x in args.batch_tokens.split(",")):
            out = Path(tmp) / f"bt{bt}"
            sync(device)
            start = time.perf_counter()
            seqs = extract_features(target, records, out, extra_layers=extra, batch_tokens=bt)
            sync(device)
            seconds = time.perf_counter() - start
            print(f"extraction, batch_tokens {bt}: {seconds:.2f} s ({tokens / seconds:.0f} tokens/s)")
            shutil.rmtree(out)
    store = SequenceStore(seqs, args.keep_prompt, device)
    plan = batch_plan(store.lengths, args.token_budget, seed=0, epoch=0)
    for name, make in (("store gather", lambda b: store.batch(b)),
                       ("host assembly + copy", lambda b: host_copy(reference_batch([seqs[i] for i in b], args.keep_prompt),
                                                                   device))):
        for b in plan[:2]:
            make(b)                                            # warm-up
        sync(device)
        start = time.perf_counter()
        for b in plan:
            make(b)
        sync(device)
        ms = 1000 * (time.perf_counter() - start) / len(plan)
        print(f"batches of {args.token_budget} tokens, {name}: {ms:.2f} ms per batch ({len(plan)} batches)")


if __name__ == "__main__":
    main()
