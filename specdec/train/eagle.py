"""EAGLE objective: predict the target's next feature and its next-token distribution, several steps deep.

Step 1 feeds the target's true features; step s > 1 feeds the head's own step s-1 predictions ("training-time
test", as in EAGLE-3), with attention arranged as at decoding time: the step-s entry at position p sees the
true-feature entries up to p-s+1 and the step-j entries (1 < j <= s) at position p-s+j, i.e. the draft path
that led to it. Loss per step: w_reg * smooth-L1 on the feature + w_cls * cross-entropy against the target's
distribution over the draft vocabulary (teacher = softmax of the target's LM head rows on the true feature).
EAGLE-1 weighs them 1 and 0.1; EAGLE-3 drops the feature term (w_reg = 0) so that g need not stay a feature.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from specdec.heads.eagle import EagleNet
from specdec.train.batches import Batch


class EagleObjective:
    kind = "eagle"
    needs_evaluation = False

    def __init__(self, net: EagleNet, embed: Tensor, teacher_rows: Tensor, *, unroll: int = 3,
                 noise: float = 0.1, w_reg: float = 1.0, w_cls: float = 0.1, eval_depth: int = 6,
                 kind: str = "eagle"):
        self.kind = kind
        self.model, self.embed, self.rows = net, embed, teacher_rows    # rows: [draft vocab, hidden]
        self.unroll, self.noise, self.eval_depth = unroll, noise, eval_depth
        self.w_reg, self.w_cls = w_reg, w_cls

    def describe(self) -> dict:
        key = "aux_layers" if self.kind == "eagle3" else "fuse_layers"
        fused = {key: list(self.model.extra_layers)} if self.model.extra_layers else {}
        return {"kind": self.kind, "unroll": self.unroll, "noise": self.noise, "w_reg": self.w_reg, "w_cls": self.w_cls,
                **fused}

    def _steps(self, batch: Batch, steps: int, noise: float) -> list[Tensor]:
        """Predicted features g_s [b, t-1, hidden] for s = 1..steps; entry p reads token p+1."""
        net = self.model
        f = net.target_input(batch.features[:, :-1], None if batch.extras is None else batch.extras[:, :-1])
        if noise:
            f = f + noise * f.detach().pow(2).mean(-1, keepdim=True).sqrt() * (torch.rand_like(f) * 2 - 1)
        e = self.embed[batch.tokens[:, 1:]]
        t = f.shape[1]
        pos = torch.arange(t, device=f.device)
        cos, sin = net.rope(pos)
        keys, values, outs = [], [], []
        inp = f
        for s in range(1, steps + 1):
            x, residual = net.entry(e, inp)
            q, k, v = net.layer.project(x, cos, sin)
            keys.append(k)
            values.append(v)
            mask = _step_mask(t, s).to(f.device) if s > 1 else None
            attn = net.layer.attend(q, torch.cat(keys, 2), torch.cat(values, 2), mask, causal=s == 1)
            g = net.layer.finish(residual, attn)
            outs.append(g)
            inp = torch.cat([torch.zeros_like(g[:, :1]), g[:, :-1]], dim=1)     # entry p reads g from p-1
        return outs

    def _mask(self, batch: Batch) -> Tensor:
        """[b, t-1] bool: entry p is trained if token p+2 (the one its output predicts) is a response token."""
        p = torch.arange(batch.tokens.shape[1] - 1, device=batch.tokens.device).unsqueeze(0)
        return batch.valid[:, 1:] & (p + 2 >= batch.prompt_lens.unsqueeze(1))

    def loss(self, batch: Batch) -> tuple[Tensor, dict]:
        nxt, mask = batch.features[:, 1:], self._mask(batch)
        with torch.no_grad():      # the target's distribution at every trained entry, once: each step uses a subset
            teacher = torch.softmax((nxt[mask] @ self.rows.t()).float(), -1)      # [entries, draft vocab]
            teacher_top = teacher.argmax(-1)
        total, metrics = 0.0, {}
        for s, g in enumerate(self._steps(batch, self.unroll, self.noise), start=1):
            m = mask.clone()
            m[:, :s - 1] = False                          # step s needs s-1 earlier entries
            if not m.any():
                continue
            gs, ns, rows = g[m], nxt[m], m[mask]          # [n, hidden]: only where a response token is predicted
            logits = self.model.logits(gs).float()
            cls = F.cross_entropy(logits, teacher[rows])  # soft targets: -sum(teacher * log_softmax(logits))
            total = total + self.w_cls * cls
            if self.w_reg:
                total = total + self.w_reg * F.smooth_l1_loss(gs.float(), ns.float())
            metrics[f"acc{s}"] = float((logits.argmax(-1) == teacher_top[rows]).float().mean())
        metrics["loss"] = float(total.detach()) if isinstance(total, Tensor) else 0.0
        return total if isinstance(total, Tensor) else g.sum() * 0, metrics

    @torch.no_grad()
    def evaluate(self, batches: list[Batch]) -> dict:
        """Top-1 accuracy per step, and the mean accepted length of a simulated greedy chain of eval_depth:
        from entry q, depth d is accepted if steps 1..d all predict the true next tokens along the path."""
        hits = [0] * self.eval_depth
        counts = [0] * self.eval_depth
        accepted = total = 0
        for batch in batches:
            mask = self._mask(batch)
            outs = self._steps(batch, self.eval_depth, 0.0)
            truth = batch.tokens[:, 2:]                                      # entry p predicts token p+2
            t = truth.shape[1]
            correct = []
            for s, g in enumerate(outs):
                pred = self.model.token_ids[self.model.logits(g[:, :t]).argmax(-1)]
                c = (pred == truth) & batch.valid[:, 2:]
                m = mask[:, :t].clone()
                m[:, :s] = False
                hits[s] += int((c & m).sum())
                counts[s] += int(m.sum())
                correct.append(c)
            run = torch.ones_like(correct[0])
            starts = mask[:, :t]
            length = torch.zeros(correct[0].shape, dtype=torch.long, device=correct[0].device)
            for d in range(self.eval_depth):                     # depth d+1 judged by step d+1 at entry q+d
                shifted = torch.zeros_like(run)
                shifted[:, :t - d] = correct[d][:, d:]
                run = run & shifted
                length += run.long()
            accepted += int(length[starts].sum())
            total += int(starts.sum())
        out = {f"acc{s + 1}": hits[s] / max(1, counts[s]) for s in range(self.eval_depth)}
        out["chain_tau"] = 1 + accepted / max(1, total)
        return out

    def export(self) -> tuple[dict, dict]:
        s = self.model.shape
        config = {"shape": s.__dict__, "draft_vocab": int(self.model.token_ids.numel()),
                  "feature_layers": list(self.model.feature_layers)}
        return config, self.model.state_dict()


def _step_mask(t: int, s: int) -> Tensor:
    """[t, s * t] bool: step-s entry p sees step-1 entries <= p-s+1 and step-j entries at p-s+j (1 < j <= s)."""
    p = torch.arange(t)
    blocks = [torch.arange(t).unsqueeze(0) <= (p - s + 1).unsqueeze(1)]
    for j in range(2, s + 1):
        blocks.append(torch.arange(t).unsqueeze(0) == (p - s + j).unsqueeze(1))
    return torch.cat(blocks, dim=1)
