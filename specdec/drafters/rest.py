"""REST (retrieval-based speculative decoding, He et al. 2023): draft what followed the context in a corpus.

A datastore (specdec.datastore: corpus token ids + suffix array, built once with `specdec datastore build`)
is searched for the longest suffix of the context; the continuations of its occurrences, merged into a trie
weighted by how often each prefix occurs, form the draft tree (the best ``max_nodes`` prefixes, at most
``depth`` deep). Proposals are deterministic (draft_probs None), so sampling stays exact under the verifier.
The depth adapts (DraftLength: longer after a fully accepted draft, shorter otherwise).
"""

from __future__ import annotations

from pathlib import Path

from specdec.datastore import Datastore, check_vocabulary, load_datastore, retrieve
from specdec.datastore.store import BUILD_COMMAND
from specdec.drafters import register
from specdec.drafters.base import DecodeState, Forkable
from specdec.drafters.pld import trie_draft
from specdec.drafters.schedule import DraftLength
from specdec.errors import ConfigError
from specdec.types import Draft, VerifyResult


class RestDrafter(Forkable):
    """Draft trees retrieved from a datastore (a directory or a loaded Datastore).

    max_suffix / min_suffix: context suffix lengths tried (longest first); max_candidates: occurrences sampled;
    depth: initial tree depth (adapts between 1 and max_depth when adaptive); max_nodes: tree size budget.
    """
    per_request = ("schedule",)

    hidden_layers: tuple[int, ...] = ()

    def __init__(self, datastore: Datastore | str | Path, max_suffix: int = 16, min_suffix: int = 2,
                 depth: int = 6, max_nodes: int = 32, max_candidates: int = 200, adaptive: bool = True,
                 max_depth: int = 12):
        if not 1 <= min_suffix <= max_suffix:
            raise ConfigError(f"min_suffix={min_suffix}, max_suffix={max_suffix}; "
                              f"accepted: 1 <= min_suffix <= max_suffix")
        for name, value in (("max_nodes", max_nodes), ("max_candidates", max_candidates)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r} is invalid; accepted: an integer >= 1")
        self.store = datastore if isinstance(datastore, Datastore) else load_datastore(str(datastore))
        self.max_suffix, self.min_suffix = max_suffix, min_suffix
        self.max_nodes, self.max_candidates = max_nodes, max_candidates
        self.schedule = DraftLength(depth, adaptive, maximum=max(max_depth, depth))
        self._proposed_depth = 0

    def begin(self, prompt_ids: list[int]) -> None:
        self._proposed_depth = 0
        self.schedule.reset()

    def propose(self, state: DecodeState) -> Draft:
        found = retrieve(self.store, state.tokens[-self.max_suffix:], max_suffix=self.max_suffix,
                         min_suffix=self.min_suffix, depth=min(self.schedule.length, state.max_depth),
                         max_candidates=self.max_candidates, max_nodes=min(self.max_nodes, state.max_nodes))
        draft = trie_draft(found.paths, max_nodes=min(self.max_nodes, state.max_nodes))
        self._proposed_depth = int(draft.depths().max()) if draft.size else 0
        return draft

    def on_accept(self, result: VerifyResult) -> None:
        self.schedule.update(result.n_accepted, self._proposed_depth)


@register("rest", "retrieval (REST): continuations of the context's longest suffix in a corpus datastore "
                  "(-o datastore=DIR; build it with `specdec datastore build`)")
def make_rest(target, datastore: str | Path | Datastore | None = None, **options) -> RestDrafter:
    if datastore is None:
        raise ConfigError(f"method 'rest' needs a datastore; build one with "
                          f"`{BUILD_COMMAND.format(model=target.name)}` and pass -o datastore=DIR")
    store = datastore if isinstance(datastore, Datastore) else load_datastore(str(datastore))
    check_vocabulary(store, target.runtime.vocab_size, target.name)
    return RestDrafter(store, **options)
