"""Data passed between drafters, verifiers and the engine.

Vocabulary (see docs/design.md): *accepted* tokens are draft tokens the verifier kept; the *recovered* token
is sampled from the residual distribution at the first rejection; the *bonus* token is the extra target token
after a fully accepted draft. Every verification step emits ``n_accepted + 1`` tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class Draft:
    """A chain or a tree of proposed tokens following the last committed token (the *root*).

    Nodes are topologically ordered: ``parents[i] < i``; ``parents[i] == -1`` means node i follows the root.
    A chain of k tokens has ``parents == [-1, 0, 1, ..., k-2]``.

    ``draft_probs[i]`` is the drafter's distribution (after the same temperature / top-k / top-p transform as
    the target) from which node i was drawn, i.e. the distribution at i's parent; siblings share it and are
    distinct draws *without replacement* in sibling order. ``None`` means a deterministic drafter (n-gram,
    retrieval, top-k expansion): each node is treated as a one-hot proposal.

    The last ``n_scratch`` nodes are *scratch*: scored in the same target pass (same tree mask and positions
    as any node) but never verified, accepted or kept; the engine hands the drafter the target's argmax after
    each of them (``VerifyResult.scratch_argmax``). Being last, they can only have scratch descendants.
    ``draft_probs`` covers the other nodes only.

    ``confidence[i]``, when the drafter has one, is its estimate that node i is accepted (with its ancestors),
    never above its parent's: drafts merged from several drafters (specdec/drafters/union.py) are sized by it.
    """

    tokens: Tensor                      # [n] int64
    parents: Tensor                     # [n] int64, -1 = child of the root
    draft_probs: Tensor | None = None   # [n - n_scratch, vocab] float32 or None
    n_scratch: int = 0                  # trailing nodes scored but never verified
    confidence: Tensor | None = None    # [n - n_scratch] float32 or None

    @staticmethod
    def chain(tokens: Tensor, draft_probs: Tensor | None = None) -> Draft:
        """A chain draft: tokens [k], draft_probs [k, vocab] or None."""
        k = tokens.shape[0]
        return Draft(tokens=tokens.long(), parents=torch.arange(-1, k - 1, dtype=torch.long),
                     draft_probs=draft_probs)

    def cpu(self) -> Draft:
        """The same draft with its tensors on the CPU."""
        probs = None if self.draft_probs is None else self.draft_probs.cpu()
        confidence = None if self.confidence is None else self.confidence.cpu()
        return Draft(self.tokens.cpu(), self.parents.cpu(), probs, self.n_scratch, confidence)

    @property
    def size(self) -> int:
        return int(self.tokens.shape[0])

    def verifiable(self) -> Draft:
        """The draft without its scratch nodes: what the verifier sees."""
        if not 0 <= self.n_scratch <= self.size:
            raise ValueError(f"n_scratch = {self.n_scratch} is invalid for a draft of {self.size} nodes; "
                             f"accepted: 0 to {self.size}.")
        if not self.n_scratch:
            return self
        m = self.size - self.n_scratch
        return Draft(tokens=self.tokens[:m], parents=self.parents[:m], draft_probs=self.draft_probs,
                     confidence=self.confidence)

    def select(self, keep: list[int] | Tensor) -> Draft:
        """The draft of the nodes `keep` (ascending, closed under ancestors), reindexed; no scratch nodes."""
        keep = torch.as_tensor(keep, dtype=torch.long)
        if self.n_scratch or (keep.numel() and int(keep.max()) >= self.size):
            raise ValueError(f"cannot select nodes {keep.tolist()} of a draft of {self.size} nodes "
                             f"({self.n_scratch} scratch)")
        new_index = torch.full((self.size,), -1, dtype=torch.long)
        new_index[keep] = torch.arange(keep.numel())
        parents = self.parents[keep]
        parents = torch.where(parents >= 0, new_index[parents.clamp(min=0)], parents)
        if bool(((self.parents[keep] >= 0) & (parents < 0)).any()):
            raise ValueError(f"nodes {keep.tolist()} are not closed under ancestors")
        pick = lambda t: None if t is None else t[keep.to(t.device)]
        return Draft(self.tokens[keep], parents, pick(self.draft_probs), 0, pick(self.confidence))

    @property
    def is_chain(self) -> bool:
        k = self.size
        return bool(torch.equal(self.parents.cpu(), torch.arange(-1, k - 1, dtype=torch.long)))

    def depths(self) -> Tensor:  # [n] int64, 1 for children of the root
        depth: list[int] = []
        for p in self.parents.tolist():
            depth.append(1 if p < 0 else depth[p] + 1)
        return torch.tensor(depth, dtype=torch.long)

    @property
    def max_depth(self) -> int:
        """How deep the draft reaches below the root (0 for the empty draft)."""
        return int(self.depths().max()) if self.size else 0


@dataclass
class VerifyResult:
    """Outcome of verifying one draft.

    ``tokens`` = accepted draft tokens followed by one recovered or bonus token (``n_accepted + 1`` tokens).
    ``accepted_path`` = draft node indices of the accepted tokens, root to leaf (for a chain: 0..n_accepted-1).
    """

    tokens: list[int]
    n_accepted: int
    accepted_path: list[int]
    next_token: int                     # the recovered (after a rejection) or bonus (all accepted) token
    bonus: bool                         # True if next_token is a bonus token (whole path down to a leaf kept)
    scratch_argmax: Tensor | None = None  # [n_scratch] int64: the target's argmax after each scratch node


@dataclass
class AcceptanceCounter:
    """How deep drafts were accepted, counted per depth d = 1, 2, ... (index d - 1) over verification steps.

    ``proposed``: steps whose verifiable draft had a node at depth d. ``reached``: steps whose verification
    reached depth d: each accepted depth, plus the first rejected one when the draft offered a node there.
    ``accepted``: steps that accepted a token at depth d (n_accepted >= d). The engine keeps one per request
    (GenerationStats.acceptance); a drafter that adapts to this request's acceptance keeps its own.
    """

    proposed: list[int] = field(default_factory=list)
    reached: list[int] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)

    def reset(self) -> None:
        self.proposed, self.reached, self.accepted = [], [], []

    def update(self, draft: Draft, result: VerifyResult) -> None:
        """Count one step: `draft` as proposed (scratch nodes are never verified, so never counted) and the
        verifier's `result` on it."""
        draft = draft.verifiable()
        depth = result.n_accepted
        last = result.accepted_path[-1] if result.accepted_path else -1
        reached = depth + (1 if bool((draft.parents == last).any()) else 0)   # a child below the last accepted
        add_ones(self.proposed, draft.max_depth)
        add_ones(self.reached, reached)
        add_ones(self.accepted, depth)
        self.accepted.extend([0] * (len(self.reached) - len(self.accepted)))     # a rate for every depth reached

    @property
    def rates(self) -> list[float]:
        """P(draft token at depth d accepted | a draft reached depth d), d = 1, 2, ..."""
        return [a / r if r else 0.0 for a, r in zip(self.accepted, self.reached)]

    def confidence(self, depth: int) -> list[float]:
        """Estimated chance that a node at depth 1..depth is accepted (with its ancestors): (a + 1) / (p + 2),
        a of the p steps that proposed that depth accepting it (a uniform prior's posterior mean), cut to never
        exceed a shallower depth's, since a node is accepted only with its parent."""
        out, cap = [], 1.0
        for d in range(depth):
            a = self.accepted[d] if d < len(self.accepted) else 0
            p = self.proposed[d] if d < len(self.proposed) else 0
            cap = min(cap, (a + 1) / (p + 2))
            out.append(cap)
        return out


def add_ones(counts: list[int], depth: int) -> None:
    """counts[d] += 1 for d < depth, growing the list as needed."""
    counts.extend([0] * (depth - len(counts)))
    for d in range(depth):
        counts[d] += 1


@dataclass
class GenerationStats:
    """Per-request statistics, the one record of a generation that the Python API, `specdec generate --json`
    and the bench's results.jsonl all read (`to_dict`). Mean accepted length counts the bonus/recovered token
    (vanilla = 1.00)."""

    prompt_tokens: int = 0
    new_tokens: int = 0
    target_forwards: int = 0            # target forward passes after the prefill
    draft_seconds: float = 0.0
    verify_seconds: float = 0.0
    prefill_seconds: float = 0.0
    seconds: float = 0.0                # the whole request, cache allocation and prefill included
    draft_tokens: int = 0               # draft tokens proposed in total (scratch nodes not included)
    scratch_tokens: int = 0             # scratch nodes scored in total (never verified)
    emitted_tokens: int = 0             # sum over steps of n_accepted + 1 (before truncation at a stop)
    acceptance: AcceptanceCounter = field(default_factory=AcceptanceCounter)
    drafter: dict[str, int] = field(default_factory=dict)   # the drafter's own counts (its `counters`), if any

    def count(self, draft: Draft, result: VerifyResult) -> None:
        """One verification step: one target forward over `draft`, `result` the verifier's decision."""
        self.target_forwards += 1
        self.scratch_tokens += draft.n_scratch
        self.draft_tokens += draft.size - draft.n_scratch
        self.emitted_tokens += result.n_accepted + 1
        self.acceptance.update(draft, result)

    @property
    def accepted_per_depth(self) -> list[int]:
        """Steps that accepted a draft token at depth d + 1."""
        return self.acceptance.accepted

    @property
    def reached_per_depth(self) -> list[int]:
        """Steps whose verification reached depth d + 1."""
        return self.acceptance.reached

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def mean_accepted_length(self) -> float:
        """Tokens emitted per target forward pass, bonus/recovered token included (Spec-Bench's tau)."""
        return self.emitted_tokens / self.target_forwards if self.target_forwards else 0.0

    @property
    def acceptance_per_depth(self) -> list[float]:
        """P(draft token at depth d accepted | a draft reached depth d), d = 1, 2, ..."""
        return self.acceptance.rates

    def to_dict(self) -> dict:
        """Counts, times and the rates derived from them, under the names results.jsonl and --json use."""
        return {
            "prompt_tokens": self.prompt_tokens, "new_tokens": self.new_tokens,
            "target_forwards": self.target_forwards, "seconds": self.seconds,
            "prefill_seconds": self.prefill_seconds,
            "tokens_per_s": self.tokens_per_s, "mean_accepted_length": self.mean_accepted_length,
            "acceptance_per_depth": self.acceptance_per_depth,
            "accepted_per_depth": list(self.accepted_per_depth), "reached_per_depth": list(self.reached_per_depth),
            "draft_seconds": self.draft_seconds, "verify_seconds": self.verify_seconds,
            "draft_tokens": self.draft_tokens, "scratch_tokens": self.scratch_tokens,
            "emitted_tokens": self.emitted_tokens, "drafter": dict(self.drafter),
        }
