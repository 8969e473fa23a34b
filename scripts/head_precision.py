"""Does a trained head draft better in float32, bfloat16 or 4 bits? Times one precision of the shipped EAGLE head.

Loads the default target in --dtype, places the shipped EAGLE head as the loader does, then recasts its linear
layers to --head (float32: as loaded; bf16: oneDNN bfloat16; q4: 4-bit, what a q4 target gets by default),
decodes the first turn of 6 Spec-Bench questions (one per group) greedily, and prints the drafting time per
step and the mean accepted length. Run one process per setting (the first call of a process pays warm-up):

    python scripts/head_precision.py --dtype q4 --head float32
    python scripts/head_precision.py --dtype q4 --head q4
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from specdec.bench.questions import default_data_path, load_questions, select
from specdec.drafters import make_drafter
from specdec.engine import SpeculativeDecoder
from specdec.models.load import load_model
from specdec.models.quant import PackedLinear, Q4Module, quantize_linears


class _Bf16(nn.Module):
    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.dense = PackedLinear(linear.weight.detach().float(), torch.bfloat16)
        self.bias = None if linear.bias is None else linear.bias.detach().float()

    def forward(self, x):
        y = self.dense(x)
        return (y if self.bias is None else y + self.bias).to(x.dtype)


def recast(net: nn.Module, head: str) -> None:
    """Set the head's linear layers to `head` precision (4-bit layers go back to float32 first)."""
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Q4Module):
                dense = nn.Linear(child.q4.in_features, child.q4.out_features, bias=child.q4.bias is not None)
                with torch.no_grad():
                    dense.weight.copy_(child.q4.weight.t())
                    if child.q4.bias is not None:
                        dense.bias.copy_(child.q4.bias)
                setattr(parent, name, dense)
    if head == "q4":
        quantize_linears(net)
    elif head == "bf16":
        for parent in list(net.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Linear):
                    setattr(parent, name, _Bf16(child))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dtype", default="float32", help="the target's dtype (float32 or q4)")
    ap.add_argument("--head", default="float32", choices=["float32", "bf16", "q4"])
    ap.add_argument("--max-new-tokens", type=int, default=64)
    args = ap.parse_args()
    target = load_model("smollm2-135m", dtype=args.dtype, quiet=True)
    drafter = make_drafter("eagle", target, {})
    recast(drafter.net, args.head)
    seconds, steps = 0.0, 0
    propose = drafter.propose

    def timed(state):
        nonlocal seconds, steps
        start = time.perf_counter()
        draft = propose(state)
        seconds, steps = seconds + time.perf_counter() - start, steps + 1
        return draft

    drafter.propose = timed
    questions = select(load_questions(default_data_path()), per_category=1)
    emitted = forwards = 0
    for q in questions:
        result = SpeculativeDecoder(target, drafter).generate(q.turns[0], args.max_new_tokens)
        emitted, forwards = emitted + result.stats.emitted_tokens, forwards + result.stats.target_forwards
    print(f"target {args.dtype}, head {args.head}: {len(questions)} questions, drafting "
          f"{1000 * seconds / steps:.2f} ms per step, mean accepted length {emitted / forwards:.3f}")


if __name__ == "__main__":
    main()
