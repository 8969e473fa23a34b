"""Distillation objective (DistillSpec-style): the small model's next-token distribution should match the
target's, measured by forward KL over the draft vocabulary at every position whose next token belongs to the response."""

from __future__ import annotations

import torch
from torch import Tensor

from specdec.heads.distilled import DistilledNet
from specdec.train.batches import Batch


class DistillObjective:
    kind = "distilled"
    needs_evaluation = False

    def __init__(self, net: DistilledNet, embed: Tensor, teacher_rows: Tensor):
        self.model, self.embed, self.rows = net, embed, teacher_rows     # rows: [draft vocab, hidden]

    def describe(self) -> dict:
        return {"kind": self.kind, "layers": len(self.model.layers)}

    def _logits(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Student and teacher log-probs [n, draft vocab] where the next token is a response token."""
        t = batch.tokens.shape[1]
        pos = torch.arange(t, device=batch.tokens.device)
        m = batch.valid & (pos.unsqueeze(0) + 1 >= batch.prompt_lens.unsqueeze(1))
        hidden = self.model.trunk(self.embed[batch.tokens], pos)
        student = torch.log_softmax(self.model.head(hidden[m]).float(), -1)
        with torch.no_grad():
            teacher = torch.log_softmax((batch.features[m] @ self.rows.t()).float(), -1)
        return student, teacher

    def loss(self, batch: Batch) -> tuple[Tensor, dict]:
        student, teacher = self._logits(batch)
        kl = (teacher.exp() * (teacher - student)).sum(-1).mean()
        acc = (student.argmax(-1) == teacher.argmax(-1)).float().mean()
        return kl, {"loss": float(kl.detach()), "acc1": float(acc)}

    @torch.no_grad()
    def evaluate(self, batches: list[Batch]) -> dict:
        kl = acc = n = 0.0
        for batch in batches:
            student, teacher = self._logits(batch)
            kl += float((teacher.exp() * (teacher - student)).sum())
            acc += float((student.argmax(-1) == teacher.argmax(-1)).sum())
            n += student.shape[0]
        return {"kl": kl / max(n, 1), "acc1": acc / max(n, 1)}

    def export(self) -> tuple[dict, dict]:
        s = self.model.shape
        config = {"shape": s.__dict__, "num_layers": len(self.model.layers),
                  "draft_vocab": int(self.model.token_ids.numel())}
        return config, self.model.state_dict()
