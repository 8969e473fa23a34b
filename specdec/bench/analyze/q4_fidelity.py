"""How closely does the 4-bit runtime (`--dtype q4`) follow float32 on the same model?

For a float32 greedy bench run's vanilla answers: teacher-forced, the share of steps where q4's argmax is
float32's, and the mean KL(float32 || q4) per token; free-running, how many of q4's own greedy answers equal
float32's and where the others first differ. q4 holds the GGUF's own 4-bit codes (docs/runtime.md), so what
separates the two is bfloat16 rounding of activations, group scales and logits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from specdec.bench.rescore import greedy_run, recorded_answers, teacher_forced_logits
from specdec.engine import SpeculativeDecoder
from specdec.errors import ConfigError


@dataclass
class Q4Fidelity:
    model: str
    answers: int = 0
    steps: int = 0
    agree: int = 0                    # teacher-forced steps where q4's argmax is float32's
    kl_nats: float = 0.0              # summed over steps: KL(float32 || q4)
    identical: int = 0                # q4's free-running greedy answers equal to float32's
    first_diff: list[int] = field(default_factory=list)    # of the others: the first token that differs

    def add(self, ref_logits: torch.Tensor, q4_logits: torch.Tensor, answer: list[int], own: list[int]) -> None:
        """One answer. ref_logits, q4_logits: [len(answer), vocab] teacher-forced; own: q4's greedy answer."""
        self.answers += 1
        self.steps += len(answer)
        self.agree += int((ref_logits.argmax(-1) == q4_logits.argmax(-1)).sum())
        self.kl_nats += float(F.kl_div(q4_logits.log_softmax(-1), ref_logits.log_softmax(-1), log_target=True,
                                       reduction="sum"))
        if own == answer:
            self.identical += 1
        else:
            self.first_diff.append(next((i for i, (x, y) in enumerate(zip(own, answer)) if x != y),
                                        min(len(own), len(answer))))

    def to_json(self) -> dict:
        return {"model": self.model, "answers": self.answers, "steps": self.steps,
                "top1_agreement": self.agree / self.steps, "mean_kl_nats_per_token": self.kl_nats / self.steps,
                "identical_answers": self.identical, "first_differences": sorted(self.first_diff)}

    def markdown(self) -> str:
        j = self.to_json()
        return "\n".join([
            f"{j['answers']} answers, {j['steps']} steps ({j['model']}):", "",
            f"- teacher-forced top-1 agreement {j['top1_agreement']:.4f}, mean KL(float32 || q4) "
            f"{j['mean_kl_nats_per_token']:.5f} nats per token",
            f"- free-running q4 greedy answers identical to float32's: {j['identical_answers']}/{j['answers']}"
            + (f"; the others first differ at token {j['first_differences']}" if j["first_differences"] else "")])


@torch.inference_mode()
def q4_fidelity(run: Path, ref, q4, data: Path | None = None, width: int = 8) -> Q4Fidelity:
    """Score a float32 greedy run's vanilla answers with `ref` (its model in float32) and `q4` (the same in q4),
    and let q4 answer each prompt itself."""
    dtype = greedy_run(run).get("dtype", "float32")
    if dtype != "float32":
        raise ConfigError(f"the run in {str(run)!r} ran in {dtype}; accepted: a float32 run, the reference q4 is "
                          f"compared with")
    out, vanilla = Q4Fidelity(ref.name), SpeculativeDecoder(q4)
    for rec in recorded_answers(run, ref, data):
        if not rec.answer:
            continue
        own = vanilla.generate(rec.prompt, len(rec.answer)).token_ids
        out.add(teacher_forced_logits(ref.runtime, rec.prompt, rec.answer, width),
                teacher_forced_logits(q4.runtime, rec.prompt, rec.answer, width), rec.answer, own)
    if not out.answers:
        raise ConfigError(f"the run in {str(run)!r} holds no vanilla answers; accepted: a run with results")
    return out
