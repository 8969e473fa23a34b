"""Medusa objective: head k at position p predicts token p+1+k (cross-entropy over the draft vocabulary, on
response tokens); held-out evaluation measures each head's top-r accuracies, which shape the decoding tree."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from specdec.heads.medusa import MedusaNet
from specdec.heads.vocab import target_to_draft
from specdec.train.batches import Batch


class MedusaObjective:
    kind = "medusa"

    def __init__(self, net: MedusaNet, vocab_size: int, *, ranks: int = 10):
        self.model, self.ranks = net, ranks
        self.t2d = target_to_draft(net.token_ids, vocab_size)
        self.accuracy: list[list[float]] | None = None

    @property
    def needs_evaluation(self) -> bool:
        """export() writes the accuracies measured by evaluate(): the decoding tree is built from them."""
        return self.accuracy is None

    def describe(self) -> dict:
        return {"kind": self.kind, "heads": self.model.num_heads}

    def _labels(self, batch: Batch) -> Tensor:
        """[b, t, heads] draft-vocabulary labels (-1 = ignore): head k at p -> token p+1+k if a response token."""
        b, t = batch.tokens.shape
        labels = torch.full((b, t, self.model.num_heads), -1, dtype=torch.long, device=batch.tokens.device)
        for k in range(1, self.model.num_heads + 1):
            off = 1 + k
            if off >= t:
                break
            lab = self.t2d.to(batch.tokens.device)[batch.tokens[:, off:]]
            pos = torch.arange(off, t, device=batch.tokens.device).unsqueeze(0)
            ok = batch.valid[:, off:] & (pos >= batch.prompt_lens.unsqueeze(1))
            labels[:, :t - off, k - 1] = torch.where(ok, lab, torch.full_like(lab, -1))
        return labels

    def loss(self, batch: Batch) -> tuple[Tensor, dict]:
        labels = self._labels(batch)                                   # [b, t, heads]
        losses, metrics = [], {}
        for k, block in enumerate(self.model.blocks):
            m = labels[:, :, k] >= 0
            if not m.any():
                continue
            logits = self.model.head(block(batch.features[m])).float()  # only where head k has a label
            losses.append(F.cross_entropy(logits, labels[:, :, k][m]))
            metrics[f"acc{k + 1}"] = float((logits.argmax(-1) == labels[:, :, k][m]).float().mean())
        total = torch.stack(losses).mean() if losses else batch.features.sum() * 0
        metrics["loss"] = float(total.detach())
        return total, metrics

    @torch.no_grad()
    def evaluate(self, batches: list[Batch]) -> dict:
        heads = self.model.num_heads
        hits = torch.zeros(heads, self.ranks)
        counts = torch.zeros(heads)
        for batch in batches:
            logits = self.model(batch.features)
            labels = self._labels(batch)
            top = torch.topk(logits, self.ranks, dim=-1).indices        # [b, t, heads, ranks]
            for k in range(heads):
                m = labels[:, :, k] >= 0
                counts[k] += int(m.sum())
                hits[k] += (top[:, :, k][m] == labels[:, :, k][m].unsqueeze(-1)).float().sum(0).cpu()
        acc = hits / counts.clamp(min=1).unsqueeze(1)
        self.accuracy = [[round(float(a), 5) for a in row] for row in acc]
        return {f"top1_head{k + 1}": float(acc[k, 0]) for k in range(heads)} | \
               {f"top{self.ranks}_head{k + 1}": float(acc[k].sum()) for k in range(heads)}

    def export(self) -> tuple[dict, dict]:
        hidden = self.model.head.in_features
        config = {"hidden": hidden, "num_heads": self.model.num_heads, "draft_vocab": int(self.model.token_ids.numel()),
                  "layers_per_head": len(self.model.blocks[0]), "accuracy": self.accuracy}
        return config, self.model.state_dict()
