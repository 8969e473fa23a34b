"""Several drafters at once (`--method eagle+pld`): each proposes for the same state and their drafts are
merged into one token tree, scored in one target pass (as SpecInfer merges the trees of several small models).

Merging: the members' drafts are laid over each other in member order. A node whose (parent, token) already
exists is shared; a new one is appended after every node before it, so the merged tree stays topologically
ordered and each member's nodes stay in their own order. At most ``state.max_nodes`` nodes are kept; a node
that does not fit is dropped with its descendants. Options are scoped by member: ``pld.num_draft=4``.

Size (`fit`, the default): when every member scores its nodes (Draft.confidence: eagle its cumulative draft
probability, medusa its path's held-out accuracy, pld this request's acceptance at each depth; an empty draft
needs none), a merged node's confidence is the highest any member gave it, and only the most confident nodes
are verified, as many as maximise expected tokens per second under the target's measured cost curve
(specdec/drafters/cost.py), the members' drafting time included. Two drafters each sized for itself would
otherwise make a tree too large for a machine where verification is costly.
Drafts with draft_probs are not cut this way: keeping a sibling after dropping an earlier one would misstate
the distribution it was drawn from.

Lossless sampling: if the first member drew its nodes from distributions (``draft_probs``), they keep them:
at any node its children are tried first, in their own order, so "drawn without replacement from
draft_probs" still describes them. Every other node is verified as a deterministic (one-hot) proposal. That
is exact whatever the token is, even one another drafter sampled, because it is fixed before the verifier
draws its uniforms (specdec/verify/tree.py: any proposal chosen from the past keeps the target distribution);
a member's sampled token only loses the acceptance its distribution would have earned.

Each member then learns what became of its own draft: the accepted path cut at the first node it did not
propose, and the committed token after that cut.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from specdec.drafters.base import DecodeState, Proposer
from specdec.drafters.cost import CostCurve, fit_costs, worth_verifying
from specdec.errors import ConfigError
from specdec.types import Draft, VerifyResult


class UnionDrafter:
    def __init__(self, members: list[tuple[str, Proposer]], costs: CostCurve | None = None):
        if len(members) < 2:
            raise ConfigError(f"a union needs at least two drafters, got {[n for n, _ in members]}; "
                              f"accepted: NAME+NAME[+...], e.g. eagle+pld")
        self.members = members
        self.costs = costs                                       # None: keep every merged node that fits
        layers = [i for _, m in members for i in m.hidden_layers]
        self.hidden_layers = tuple(dict.fromkeys(layers))         # every state a member asked for, once
        self._maps: list[list[int | None]] = []                  # per member: its node -> merged node
        self._drafts: list[Draft] = []

    def fork(self) -> UnionDrafter:
        """The union for another request: each member forked (weights shared, per-request state its own)."""
        return UnionDrafter([(name, m.fork()) for name, m in self.members], self.costs)

    def begin(self, prompt_ids: list[int]) -> None:
        for _, m in self.members:
            m.begin(prompt_ids)

    def propose(self, state: DecodeState) -> Draft:
        started = time.perf_counter()
        drafts = []
        for name, m in self.members:
            d = m.propose(state)
            if d.n_scratch:
                raise ConfigError(f"drafter {name!r} proposes scratch nodes, which a union cannot merge; "
                                  f"accepted: drafters whose drafts are plain chains or trees")
            drafts.append(d)
        merged, maps = merge_drafts(drafts, state.max_nodes)
        if self.costs is not None and merged.confidence is not None and merged.draft_probs is None:
            merged, maps = fit_merged(merged, maps, self.costs, time.perf_counter() - started)
        self._drafts, self._maps = drafts, maps
        return merged

    def on_accept(self, result: VerifyResult) -> None:
        for (_, m), d, mapping in zip(self.members, self._drafts, self._maps):
            m.on_accept(member_result(result, d, mapping))

    @property
    def counters(self) -> dict[str, int]:
        """The members' own counts (the stats' `drafter` entry), summed by name."""
        out: dict[str, int] = {}
        for _, m in self.members:
            for key, n in (getattr(m, "counters", None) or {}).items():
                out[key] = out.get(key, 0) + n
        return out

    def end(self, output_ids: list[int], learn: bool = True) -> None:
        """The request ended: members that learn from outputs (the optional `end` of the protocol) learn."""
        for _, m in self.members:
            if hasattr(m, "end"):
                m.end(output_ids, learn)


def merge_drafts(drafts: list[Draft], max_nodes: int) -> tuple[Draft, list[list[int | None]]]:
    """One tree holding the drafts' nodes (shared where parent and token agree), at most max_nodes of them, and
    for each draft the merged index of each of its nodes (None: dropped for room). draft_probs: the first
    draft's rows for its nodes and one-hot rows for the rest, or None when the first draft has none."""
    tokens: list[int] = []
    parents: list[int] = []
    child: dict[tuple[int, int], int] = {}                       # (merged parent, token) -> merged node
    maps: list[list[int | None]] = []
    for d in drafts:
        mapping: list[int | None] = []
        for tok, par in zip(d.tokens.tolist(), d.parents.tolist()):
            parent = -1 if par < 0 else mapping[par]
            node = None if parent is None else child.get((parent, tok))
            if node is None and parent is not None and len(tokens) < max_nodes:
                node = len(tokens)
                tokens.append(tok)
                parents.append(parent)
                child[(parent, tok)] = node
            mapping.append(node)
        maps.append(mapping)
    first = drafts[0]
    probs = None
    if first.draft_probs is not None:
        dev = first.draft_probs.device                           # stays where the drafter made it (cuda)
        probs = torch.nn.functional.one_hot(torch.tensor(tokens, dtype=torch.long, device=dev),
                                            first.draft_probs.shape[1]).to(first.draft_probs.dtype)
        rows = {m: i for i, m in reversed(list(enumerate(maps[0]))) if m is not None}   # merged -> first own row
        if rows:
            probs[list(rows)] = first.draft_probs[list(rows.values())]
    merged = Draft(torch.tensor(tokens, dtype=torch.long), torch.tensor(parents, dtype=torch.long), probs,
                   confidence=_merged_confidence(drafts, maps, parents))
    return merged, maps


def _merged_confidence(drafts: list[Draft], maps: list[list[int | None]], parents: list[int]) -> Tensor | None:
    """Per merged node: the highest confidence a member gave it, cut to its parent's; None unless every draft
    that proposed something carries confidences."""
    if any(d.confidence is None for d in drafts if d.size):
        return None
    conf = [0.0] * len(parents)
    for d, mapping in zip(drafts, maps):
        for c, m in zip(d.confidence.tolist() if d.size else [], mapping):
            if m is not None:
                conf[m] = max(conf[m], c)
    for i, p in enumerate(parents):                               # parents come first
        if p >= 0:
            conf[i] = min(conf[i], conf[p])
    return torch.tensor(conf, dtype=torch.float32)


def fit_merged(merged: Draft, maps: list[list[int | None]], costs: CostCurve,
               draft_seconds: float) -> tuple[Draft, list[list[int | None]]]:
    """Keep the merged draft's most confident nodes, as many as maximise expected tokens per second under the
    target's cost curve (specdec/drafters/cost.py); children never outrank their parents, so the kept set is
    a tree. The members' maps follow the reindexing."""
    keep = worth_verifying(merged.confidence.tolist(), costs, draft_seconds)
    new_index = {old: new for new, old in enumerate(keep)}
    return merged.select(keep), [[None if m is None else new_index.get(m) for m in mapping] for mapping in maps]


def member_result(result: VerifyResult, draft: Draft, mapping: list[int | None]) -> VerifyResult:
    """What the verifier decided about one member's draft: the accepted path up to the first node the member
    did not propose, then the token committed there."""
    own_index = {m: i for i, m in enumerate(mapping) if m is not None}
    path: list[int] = []
    for node in result.accepted_path:
        if node not in own_index:
            break
        path.append(own_index[node])
    n = len(path)
    if n == result.n_accepted:
        bonus = result.bonus
    else:                                                         # another member's node was accepted next
        bonus = not bool((draft.parents == (path[-1] if path else -1)).any())
    return VerifyResult(tokens=result.tokens[:n + 1], n_accepted=n, accepted_path=path,
                        next_token=result.tokens[n], bonus=bonus)


def make_union(target, names: list[str], options: dict, make) -> UnionDrafter:
    """Build NAME+NAME[+...] with make(name, target, options); member options are keyed MEMBER.KEY, and `fit`
    (default true) is the union's own: size merged drafts by the target's measured cost curve."""
    if len(set(names)) != len(names) or any(not n for n in names):
        raise ConfigError(f"union {'+'.join(names)!r} is invalid; accepted: distinct method names joined by '+', "
                          f"e.g. eagle+pld")
    scoped: dict[str, dict] = {n: {} for n in names}
    own = {"fit": True}
    for key, value in options.items():
        member, dot, sub = key.rpartition(".")
        if not dot and key in own:
            own[key] = value
        elif not dot or member not in scoped:
            raise ConfigError(f"option {key!r} for union {'+'.join(names)!r} names no member; accepted: "
                              f"MEMBER.KEY with MEMBER one of {', '.join(names)} (e.g. {names[-1]}.KEY), or fit")
        else:
            scoped[member][sub] = value
    costs = fit_costs(target, own["fit"])
    return UnionDrafter([(n, make(n, target, scoped[n])) for n in names], costs)
