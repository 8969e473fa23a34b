"""How closely does the 4-bit runtime (`--dtype q4`) follow float32 on the same model?

For a `specdec bench` run's float32 vanilla answers: teacher-forced, the share of steps where q4's argmax is
float32's, and the mean KL(float32 || q4) per token; free-running, how many q4 greedy answers equal float32's
and where the others first differ. q4 holds the GGUF's own 4-bit codes (docs/runtime.md), so what separates the
two is bfloat16 rounding of activations, group scales and logits.

    python scripts/q4_fidelity.py --run docs/bench-pld-2026-11-27
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from specdec.bench import rescore
from specdec.engine import SpeculativeDecoder
from specdec.models.load import load_model


@torch.inference_mode()
def main() -> None:
    args = rescore.run_parser(__doc__, "a float32 greedy specdec bench --out directory").parse_args()
    run = rescore.load_run(args.run)
    ref, q4 = load_model(run["model"], dtype="float32"), load_model(run["model"], dtype="q4")
    vanilla = SpeculativeDecoder(q4)
    steps = agree = identical = answers = 0
    kl, first_diff = 0.0, []
    for prompt, answer in rescore.recorded_answers(args.run, ref, args.data):
        a = rescore.teacher_forced_logits(ref.runtime, prompt, answer, 8)
        b = rescore.teacher_forced_logits(q4.runtime, prompt, answer, 8)
        steps += len(answer)
        agree += int((a.argmax(-1) == b.argmax(-1)).sum())
        kl += float(F.kl_div(b.log_softmax(-1), a.log_softmax(-1), log_target=True, reduction="sum"))
        own = vanilla.generate(prompt, len(answer)).token_ids
        answers += 1
        if own == answer:
            identical += 1
        else:
            first_diff.append(next((i for i, (x, y) in enumerate(zip(own, answer)) if x != y), min(len(own), len(answer))))
    print(f"{answers} answers, {steps} steps ({run['model']}): teacher-forced top-1 agreement {agree / steps:.4f}, "
          f"mean KL(float32 || q4) {kl / steps:.5f} nats per token")
    print(f"free-running q4 greedy answers identical to float32's: {identical}/{answers}; the others first differ "
          f"at token {sorted(first_diff)}")


if __name__ == "__main__":
    main()
