"""How close do greedy decisions come to ties, against how much a 1-row and a k-row pass disagree?

Greedy speculative output equals vanilla output when the target picks the same argmax whether it scores a token
alone (vanilla: one row per pass) or among k verified tokens. In float32 on CPU, MKL computes a 1-row product
and a multi-row product with different rounding, so the logits differ slightly; a decision can flip only where
the top two logits are closer than that. Each of a bench run's vanilla answers is scored again one row at a
time and `width` rows per pass (teacher-forced, as verification scores a fully accepted chain); the result
holds the distribution of top-2 logit gaps, of the 1-row vs k-row differences, and the argmax flips.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from specdec.bench.rescore import recorded_answers, teacher_forced_logits
from specdec.errors import ConfigError


@dataclass
class NearTies:
    model: str
    dtype: str
    width: int                                              # tokens per pass of the multi-row scoring
    answers: int = 0
    flips: int = 0                                          # steps whose argmax differs between the two
    gaps: list[torch.Tensor] = field(default_factory=list)  # per answer [steps]: top-1 minus top-2 logit, 1-row
    diffs: list[torch.Tensor] = field(default_factory=list)  # per answer [steps]: max |1-row - k-row| logit

    def add(self, one: torch.Tensor, multi: torch.Tensor) -> None:
        """One answer's logits, one: [steps, vocab] scored a row per pass, multi: [steps, vocab] `width` per pass."""
        top = one.topk(2, -1).values
        self.answers += 1
        self.gaps.append(top[:, 0] - top[:, 1])
        self.diffs.append((multi - one).abs().max(-1).values)
        self.flips += int((multi.argmax(-1) != one.argmax(-1)).sum())

    def to_json(self) -> dict:
        g, d = torch.cat(self.gaps), torch.cat(self.diffs)
        return {"model": self.model, "dtype": self.dtype, "width": self.width, "answers": self.answers,
                "steps": len(g),
                "top2_gap": {"min": g.min().item(), "q0.001": g.quantile(0.001).item(),
                             "q0.01": g.quantile(0.01).item(), "median": g.median().item()},
                "row_difference": {"median": d.median().item(), "q0.99": d.quantile(0.99).item(),
                                   "max": d.max().item()},
                "gap_below_max_difference": int((g < d.max()).sum()), "exact_ties": int((g == 0).sum()),
                "argmax_flips": self.flips}

    def markdown(self) -> str:
        j = self.to_json()
        gap, diff = j["top2_gap"], j["row_difference"]
        return "\n".join([
            f"{j['steps']} greedy steps of {j['answers']} answers ({j['model']}, {j['dtype']})", "",
            f"- top-2 logit gap: min {gap['min']:.3g}, 0.1% quantile {gap['q0.001']:.3g}, 1% {gap['q0.01']:.3g}, "
            f"median {gap['median']:.3g}",
            f"- max |1-row - {self.width}-row logit| per step: median {diff['median']:.3g}, 99% {diff['q0.99']:.3g}, "
            f"max {diff['max']:.3g}",
            f"- steps whose gap is below the largest difference: {j['gap_below_max_difference']}; exact ties: "
            f"{j['exact_ties']}; argmax flips: {j['argmax_flips']}"])


@torch.inference_mode()
def near_ties(run: Path, target, width: int = 8, data: Path | None = None, dtype: str = "float32") -> NearTies:
    """Score every vanilla answer of the bench run in `run` with `target` (the run's model, in its dtype)."""
    out = NearTies(target.name, dtype, width)
    for rec in recorded_answers(run, target, data):
        if rec.answer:
            out.add(teacher_forced_logits(target.runtime, rec.prompt, rec.answer, 1),
                    teacher_forced_logits(target.runtime, rec.prompt, rec.answer, width))
    if not out.answers:
        raise ConfigError(f"the run in {str(run)!r} holds no vanilla answers; accepted: a run with results")
    return out
