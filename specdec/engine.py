"""The decode loop over a batch of running requests: admit -> propose -> one target pass -> verify per request ->
commit / roll back -> emit. Knows no method names; a batch of one is a batch.

Invariant, per request: its cache slot holds every committed token except the last one, the *root*. Each step
scores [root, draft nodes] of every decoding request in one forward pass of the target (`forward_batch`: each
request's rows after its own slot, with its own positions and tree mask), so for each request logits row 0 is
the target after its root and row i+1 the target after its draft node i. The request's verifier keeps a root
path and adds one recovered/bonus token; its slot keeps the root and the accepted nodes (moved into contiguous
positions) and the new token becomes its root. Vanilla decoding is the empty draft. A draft's trailing
*scratch* nodes are scored in the same pass but never verified or kept; the drafter gets the target's argmax
after each of them.

Requests join between steps: a prompt is prefilled in chunks that ride in the same pass as the others' decode
rows (at most `max_num_batched_tokens` rows a pass), so a long prompt never stalls everyone's next token. They
leave between steps (end of sequence, stop string, length, abort) and free their slot before the next step.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from specdec.config import SamplingParams
from specdec.drafters.base import DecodeState, Proposer
from specdec.errors import ConfigError, ContextLengthError
from specdec.models.runtime import Segment
from specdec.sequence import GenerationResult, Request, Sequence, cut_at_stop
from specdec.tree import tree_inputs
from specdec.types import AcceptanceCounter, Draft
from specdec.verify import LOSSY_RULES, SEED_STABLE_RULES, check_rule, target_choices, verify_draft

if TYPE_CHECKING:
    from specdec.models.load import LoadedModel

__all__ = ["Engine", "GenerationResult", "Request", "SpeculativeDecoder", "StepReport"]

Budget = Callable[[list[Sequence]], list[int | None]]   # draft nodes allowed per decoding request this step


@dataclass
class StepReport:
    """What one step did (for metrics and tests)."""
    decoding: int            # requests that drafted and were verified in this pass
    prefilling: int          # requests whose prompt chunk rode in this pass
    rows: int                # rows of the pass (roots, draft nodes, prompt tokens)
    acceptance: AcceptanceCounter = field(default_factory=AcceptanceCounter)   # this step's drafts, by depth
    draft_tokens: int = 0    # verifiable draft nodes proposed (a tree's siblings included)
    seconds: float = 0.0

    def count(self, draft: Draft, result) -> None:
        self.acceptance.update(draft, result)
        self.draft_tokens += draft.size - draft.n_scratch

    @property
    def drafts(self) -> int:
        """Decoding requests with a non-empty draft."""
        return self.acceptance.proposed[0] if self.acceptance.proposed else 0

    @property
    def accepted_tokens(self) -> int:
        return sum(self.acceptance.accepted)

    @property
    def accepted_per_depth(self) -> list[int]:
        """Accepted draft tokens at depth 1, 2, ..."""
        return list(self.acceptance.accepted)


class Engine:
    """Runs many requests on one target: `add` them, call `step` until `has_work` is False (or `run`)."""

    def __init__(self, target: LoadedModel, *, rule: str = "exact", max_num_seqs: int = 8,
                 max_num_batched_tokens: int = 2048, max_model_len: int | None = None, budget: Budget | None = None,
                 on_step: Callable[[StepReport], None] | None = None):
        check_rule(rule)
        _check_positive("max_num_seqs", max_num_seqs)
        _check_positive("max_num_batched_tokens", max_num_batched_tokens)
        if max_num_batched_tokens < max_num_seqs:
            raise ConfigError(f"max_num_batched_tokens={max_num_batched_tokens} is below max_num_seqs={max_num_seqs}; "
                              f"accepted: at least one row per running request")
        rt = target.runtime
        if max_model_len is not None:
            _check_positive("max_model_len", max_model_len)
        self.target, self.rule, self.budget, self.on_step = target, rule, budget, on_step
        self.max_num_seqs, self.max_num_batched_tokens = max_num_seqs, max_num_batched_tokens
        self.max_model_len = min(rt.max_context, max_model_len or rt.max_context)
        self._slots = None                                       # one cache per slot, allocated on first admission
        self._free = list(range(max_num_seqs))
        self.waiting: deque[Request] = deque()
        self.running: list[Sequence] = []
        self._aborted: set[str] = set()

    # -- requests in and out ------------------------------------------------------------------------------------

    def add(self, request: Request) -> None:
        """Queue a request (checked now: a request that cannot run is refused here, never mid-flight)."""
        self.check(request.prompt_ids, request.max_new_tokens)
        if not isinstance(request.sampling, SamplingParams):
            raise ConfigError(f"sampling={request.sampling!r} is invalid; accepted: a SamplingParams")
        self.waiting.append(request)

    def check(self, prompt_ids: list[int], max_new_tokens: int) -> None:
        """Refuse a request that cannot run here (bad length, empty prompt, longer than the context)."""
        check_request(prompt_ids, max_new_tokens)
        window = self.target.runtime.max_context
        limit = min(window, self.max_model_len)
        if len(prompt_ids) + max_new_tokens > limit:
            what = (f"the context window of {window} tokens of {self.target.name}" if limit == window
                    else f"the maximum model length of {limit} tokens")
            raise ContextLengthError(f"prompt of {len(prompt_ids)} tokens + max_new_tokens={max_new_tokens} exceeds "
                                     f"{what}; shorten the prompt or lower max_new_tokens")

    def abort(self, request_id: str) -> None:
        """Cancel a request: it leaves before the next step (finish reason "abort"), its slot freed."""
        self._aborted.add(request_id)

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    @property
    def free_slots(self) -> int:
        return len(self._free)

    def run(self) -> list[GenerationResult]:
        """Step until every queued request has finished; their results in the order they finished."""
        done: list[GenerationResult] = []
        while self.has_work:
            done += self.step()
        return done

    # -- one step ---------------------------------------------------------------------------------------------

    def step(self) -> list[GenerationResult]:
        """Admit, draft, score every running request in one pass, verify and commit; the requests that ended."""
        ended = self._retire_aborted()
        self._admit()
        started = time.perf_counter()
        decoding = [s for s in self.running if not s.prefill_left]
        jobs = [(s, self._propose(s, n)) for s, n in zip(decoding, self._budgets(decoding))]
        segments = [self._decode_segment(s, draft) for s, (draft, _) in jobs]
        rows = sum(seg.rows for seg in segments)
        prefills = []
        for s in (s for s in self.running if s.prefill_left):
            n = min(s.prefill_left, self.max_num_batched_tokens - rows)
            if n <= 0:
                break
            prompt = s.request.prompt_ids[s.prefilled:s.prefilled + n]
            segments.append(Segment(torch.tensor([prompt]), s.cache, logits="none"))
            prefills.append((s, n))
            rows += n
        if not segments:
            return ended
        layers = tuple(sorted({i for s in self.running for i in s.drafter.hidden_layers}))
        outs = self.target.runtime.forward_batch(segments, hidden_layers=layers)
        report = StepReport(len(jobs), len(prefills), rows)
        best = self._read_choices(jobs, segments, outs)
        for (s, (draft, proposed)), seg, out, choices in zip(jobs, segments, outs, best):
            self._commit(s, draft, proposed, seg, out, report, choices)
        for (s, n), out in zip(prefills, outs[len(jobs):]):
            s.add_prefill(n, {k: out.hidden[k][0] for k in s.drafter.hidden_layers})
        report.seconds = time.perf_counter() - started
        for s, _ in jobs:
            s.stats.verify_seconds += report.seconds      # every request waited for the whole pass
        if self.on_step:
            self.on_step(report)
        return ended + self._retire_finished()

    def _budgets(self, decoding: list[Sequence]) -> list[int | None]:
        """Draft nodes each decoding request may propose: the budget policy's choice, within a fair share of the
        pass's rows (so prompts still get their chunks) and within the request's cache room."""
        if not decoding:
            return []
        chosen = self.budget(decoding) if self.budget else [None] * len(decoding)
        spare = self.max_num_batched_tokens - len(decoding)           # rows beyond the roots
        if any(s.prefill_left for s in self.running):
            spare //= 2                                               # the other half for prompt chunks
        share = max(0, spare // len(decoding))
        return [share if n is None else min(n, share) for n in chosen]

    def _propose(self, s: Sequence, budget: int) -> tuple[Draft, bool]:
        """The request's draft within `budget` nodes, its cache room and its remaining tokens, and whether its
        drafter was asked (with no node allowed it is not: no drafting cost, and the target states it has not
        seen wait for its next call)."""
        t0 = time.perf_counter()
        room = self.max_model_len - s.cache.length - 1                # draft nodes that still fit after the root
        if min(room, budget) <= 0:
            return _empty(), False
        left = s.request.max_new_tokens - len(s.new) - 1
        seeded = self.rule in SEED_STABLE_RULES and not s.sampling.greedy
        state = DecodeState(s.tokens, s.sampling, s.generator, max_depth=min(left, room),
                            max_nodes=min(room, budget), hidden=s.take_hidden(), cache=s.cache, room=room,
                            noise_seed=s.sampling.seed if seeded else None)
        draft = s.drafter.propose(state)
        seconds = time.perf_counter() - t0
        s.stats.draft_seconds += seconds
        if self.budget is not None:                                   # what a budget policy learns from
            s.count_fill(state.max_nodes, draft.size - draft.n_scratch)
            s.count_draft_cost(draft.size - draft.n_scratch, seconds)
        return draft, True

    def _decode_segment(self, s: Sequence, draft: Draft) -> Segment:
        rt = self.target.runtime
        ids = torch.cat([torch.tensor([s.tokens[-1]]), draft.tokens.cpu()]).unsqueeze(0)
        if draft.is_chain:
            return Segment(ids, s.cache)
        mask, positions = tree_inputs(draft.parents, s.cache.length, rt.device)
        return Segment(ids, s.cache, positions, mask)

    def _commit(self, s: Sequence, draft: Draft, proposed: bool, seg: Segment, out, report: StepReport,
                best: list[int] | None) -> None:
        """Verify a request's draft on its rows, keep the root and the accepted path in its slot, emit. The
        drafter hears the verdict only on a draft it proposed; the target states of the kept rows join those it
        has not seen yet (a step without drafting must not open a gap in a feature-level head's history).
        best: the target's choices on the request's rows, read with the other requests' (`_read_choices`), or
        None where its rule verifies on the distributions."""
        start = s.cache.length - seg.rows                             # the pass advanced the slot by its rows
        logits, m = out.logits[0], draft.size - draft.n_scratch       # [n+1, vocab]; verifiable nodes
        # Row 0 predicts sequence position start + 1: the cache holds every committed token but the root.
        if best is not None:
            result = verify_draft(draft.verifiable(), logits[:m + 1], s.sampling, rule=self.rule, best=best[:m + 1])
        else:
            result = verify_draft(draft.verifiable(), logits[:m + 1].float(), s.sampling, s.generator, self.rule,
                                  position=start + 1)
        if draft.n_scratch:
            result.scratch_argmax = (torch.tensor(best[m + 1:]) if best is not None
                                     else logits[m + 1:].argmax(-1).cpu())
        keep = [0] + [i + 1 for i in result.accepted_path]
        s.cache.keep(start, keep)
        rows = torch.tensor(keep, device=logits.device)
        s.add_hidden({k: out.hidden[k][0, rows] for k in s.drafter.hidden_layers})
        if proposed:
            s.drafter.on_accept(result)
        s.stats.count(draft, result)
        report.count(draft, result)
        s.tokens += result.tokens
        emitted, finish = cut_at_stop(result.tokens, s.new, s.request.max_new_tokens, s.request.stop,
                                      self.target.eos_token_ids, self.target.decode)
        s.emit(emitted, finish)

    def _read_choices(self, jobs: list, segments: list[Segment], outs: list) -> list[list[int] | None]:
        """Each decoding request's target choices (`target_choices` on its verifiable rows, the argmax on its
        scratch rows), computed where the logits are and read by the host in one transfer for the whole step: on a
        GPU one synchronisation, not one per request. None for a request whose rule verifies on the
        distributions (those run on the CPU in `_commit`)."""
        picked: list[tuple[int, Tensor]] = []
        for i, ((s, (draft, _)), seg, out) in enumerate(zip(jobs, segments, outs)):
            logits, m = out.logits[0], draft.size - draft.n_scratch
            start = s.cache.length - seg.rows
            choices = target_choices(draft.verifiable(), logits[:m + 1], s.sampling, s.generator, self.rule,
                                     position=start + 1)
            if choices is not None:
                picked.append((i, torch.cat([choices, logits[m + 1:].argmax(-1)]) if draft.n_scratch else choices))
        best: list[list[int] | None] = [None] * len(jobs)
        if picked:
            flat, at = torch.cat([c for _, c in picked]).tolist(), 0
            for i, c in picked:
                best[i], at = flat[at:at + c.shape[0]], at + c.shape[0]
        return best

    # -- slots ------------------------------------------------------------------------------------------------

    def _admit(self) -> None:
        while self.waiting and self._free:
            request = self.waiting.popleft()
            if request.request_id in self._aborted:
                self._aborted.discard(request.request_id)
                continue
            started = time.perf_counter()
            if self._slots is None:
                self._slots = self.target.runtime.new_slots(self.max_model_len, self.max_num_seqs)
            slot = self._free.pop(0)
            cache = self._slots[slot]
            cache.crop(0)                                             # whatever an earlier request left
            s = Sequence(request, slot, cache, started)
            s.drafter.begin(list(request.prompt_ids))
            self.running.append(s)

    def _retire_aborted(self) -> list[GenerationResult]:
        """Aborted requests leave: queued ones without running, running ones with what they emitted so far."""
        ended = []
        if self._aborted:
            for r in [r for r in self.waiting if r.request_id in self._aborted]:
                self.waiting.remove(r)
                ended.append(self._never_started(r))
            for s in self.running:
                if s.request_id in self._aborted and s.finish_reason is None:
                    s.finish("abort")
            self._aborted.clear()
        return ended + self._retire_finished()

    def _never_started(self, request: Request) -> GenerationResult:
        s = Sequence(request, -1, None)
        s.finish("abort")
        return s.result(self.target.decode, lossy=False)

    def _retire_finished(self) -> list[GenerationResult]:
        done = [s for s in self.running if s.finish_reason is not None]
        self.running = [s for s in self.running if s.finish_reason is None]
        for s in done:
            self._free.append(s.slot)
            self._free.sort()
            s.stats.drafter = dict(getattr(s.drafter, "counters", None) or {})   # optional: a drafter's own counts
            end = getattr(s.drafter, "end", None)                     # optional: drafters that learn from outputs
            if end is not None and s.finish_reason != "abort":
                end(list(s.new), s.request.learn)
        lossy = lambda s: self.rule in LOSSY_RULES and not s.sampling.greedy  # noqa: E731
        return [s.result(self.target.decode, lossy(s)) for s in done]


class SpeculativeDecoder:
    """Speculative decoding of `target` with `drafter` (None = vanilla): one request at a time (`generate`), or
    several at once in one batch (`generate_many`, each request with its own drafter from `drafter.fork()`)."""

    def __init__(self, target: LoadedModel, drafter: Proposer | None = None, *, rule: str = "exact"):
        check_rule(rule)
        self.target, self.drafter, self.rule = target, drafter, rule

    def generate(self, prompt: str | list[int], max_new_tokens: int = 128, sampling: SamplingParams | None = None,
                 *, chat: bool = True, stop: tuple[str, ...] = (),
                 on_tokens: Callable[[list[int]], None] | None = None, learn: bool = True) -> GenerationResult:
        """One request: the batch-of-one case of the engine's loop, with a cache sized for this request.
        learn=False: a drafter that learns from outputs (suffix) does not keep this one."""
        prompt_ids = self.target.encode(prompt, chat=chat) if isinstance(prompt, str) else list(prompt)
        check_request(prompt_ids, max_new_tokens)
        engine = Engine(self.target, rule=self.rule, max_num_seqs=1, max_num_batched_tokens=_whole(prompt_ids),
                        max_model_len=len(prompt_ids) + max_new_tokens + 1)
        engine.add(Request(prompt_ids, max_new_tokens, sampling or SamplingParams(), tuple(stop), self.drafter,
                           on_tokens, learn=learn))
        return engine.run()[0]

    def generate_many(self, prompts: list[str | list[int]], max_new_tokens: int = 128,
                      sampling: SamplingParams | list[SamplingParams] | None = None, *, chat: bool = True,
                      stop: tuple[str, ...] = (), max_num_seqs: int = 8) -> list[GenerationResult]:
        """Several requests decoded together, up to `max_num_seqs` at a time; results in the order of `prompts`."""
        samplings = sampling if isinstance(sampling, list) else [sampling or SamplingParams()] * len(prompts)
        if len(samplings) != len(prompts):
            raise ConfigError(f"{len(samplings)} sampling settings for {len(prompts)} prompts; accepted: one, or "
                              f"one per prompt")
        ids = [self.target.encode(p, chat=chat) if isinstance(p, str) else list(p) for p in prompts]
        for p in ids:
            check_request(p, max_new_tokens)
        engine = Engine(self.target, rule=self.rule, max_num_seqs=max(1, min(max_num_seqs, len(ids))),
                        max_num_batched_tokens=max(2048, max_num_seqs),
                        max_model_len=max(len(p) for p in ids) + max_new_tokens + 1 if ids else None)
        requests = [Request(p, max_new_tokens, s, tuple(stop), self._drafter_for_another()) for p, s in
                    zip(ids, samplings)]
        for r in requests:
            engine.add(r)
        by_id = {r.request_id: r for r in engine.run()}
        return [by_id[r.request_id] for r in requests]

    def _drafter_for_another(self) -> Proposer | None:
        if self.drafter is None:
            return None
        fork = getattr(self.drafter, "fork", None)
        if fork is None:
            raise ConfigError(f"drafter {type(self.drafter).__name__} has no fork(): it cannot serve several requests "
                              f"at once; accepted: a drafter with fork() (every built-in method), or generate()")
        return fork()


def _empty() -> Draft:
    return Draft.chain(torch.zeros(0, dtype=torch.long))


def _whole(prompt_ids: list[int]) -> int:
    """A pass budget that prefills any prompt in one chunk (a batch of one has nobody to keep waiting)."""
    return max(len(prompt_ids), 1) + 4096


def check_request(prompt_ids: list[int], max_new_tokens: int) -> None:
    """What any request needs, whatever the engine: a positive integer length and a non-empty prompt."""
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens={max_new_tokens!r} is invalid; accepted: an integer >= 1")
    if not prompt_ids:
        raise ConfigError("the prompt is empty; accepted: at least one token")


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}={value!r} is invalid; accepted: an integer >= 1")
