"""A drafter kind is one declaration plus its registration: this file defines a toy kind (one residual SiLU block
over the target's final feature at position p, predicting token p+2: a one-head Medusa), registers it, trains it
with the real pipeline, loads it back the way users do (make_drafter with -o drafter=DIR) and decodes with it
exactly as vanilla. The registry names its kinds in errors and in `specdec train`'s flags."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from specdec import drafters
from specdec.drafters import make_drafter
from specdec.drafters.trained import load_trained
from specdec.engine import SpeculativeDecoder
from specdec.errors import ConfigError
from specdec.heads.io import load_drafter
from specdec.heads.vocab import target_to_draft
from specdec.train.batches import Batch
from specdec.train.kinds import get_kind, kind_names, register_kind, unregister_kind
from specdec.train.kinds.base import TrainedKind, option
from specdec.train.loop import LoopConfig
from specdec.train.objective import Objective
from specdec.train.pipeline import TrainSettings, train_drafter
from specdec.types import Draft
from tests.tiny import tiny_target


class ToyNet(nn.Module):
    def __init__(self, hidden: int, draft_vocab: int, blocks: int):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(blocks))
        self.head = nn.Linear(hidden, draft_vocab, bias=False)
        self.register_buffer("token_ids", torch.zeros(draft_vocab, dtype=torch.long))

    def forward(self, features: Tensor) -> Tensor:        # [..., hidden] -> [..., draft vocab]
        for block in self.blocks:
            features = features + F.silu(block(features))
        return self.head(features)


class ToyObjective:
    needs_evaluation = False

    def __init__(self, net: ToyNet, vocab_size: int):
        self.model, self.t2d = net, target_to_draft(net.token_ids.cpu(), vocab_size)

    def describe(self) -> dict:
        return {"kind": "toy", "blocks": len(self.model.blocks)}

    def _pairs(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Features [n, hidden] at p and draft labels [n] of token p+2, where that is a response token."""
        t = batch.tokens.shape[1]
        labels = self.t2d.to(batch.tokens.device)[batch.tokens[:, 2:]]                   # [b, t-2]
        pos = torch.arange(2, t, device=batch.tokens.device).unsqueeze(0)
        m = batch.valid[:, 2:] & (pos >= batch.prompt_lens.unsqueeze(1)) & (labels >= 0)
        return batch.features[:, :t - 2][m], labels[m]

    def loss(self, batch: Batch) -> tuple[Tensor, dict]:
        feats, labels = self._pairs(batch)
        logits = self.model(feats).float()
        loss = F.cross_entropy(logits, labels) if len(labels) else logits.sum() * 0
        return loss, {"loss": float(loss.detach())}

    @torch.no_grad()
    def evaluate(self, batches: list[Batch]) -> dict:
        pairs = [self._pairs(b) for b in batches]
        hits = sum(int((self.model(f).argmax(-1) == lab).sum()) for f, lab in pairs)
        return {"acc1": hits / max(1, sum(len(lab) for _, lab in pairs))}

    def export(self) -> tuple[dict, dict]:
        net = self.model
        return ({"hidden": net.head.in_features, "draft_vocab": int(net.token_ids.numel()), "blocks": len(net.blocks)},
                net.state_dict())


@dataclass(frozen=True)
class ToyOptions:
    blocks: int = option(1, "residual SiLU blocks (default 1)")


class ToyKind(TrainedKind):
    name = "toy"
    description = "a one-head Medusa (tests only)"
    options = ToyOptions
    decode_defaults = {}

    def shape(self, config: dict) -> dict:
        return {"blocks": int(config["blocks"])}

    def network(self, target, token_ids, options: ToyOptions) -> ToyNet:
        from specdec.heads.target import lm_head_rows
        net = ToyNet(target.runtime.config.hidden_size, len(token_ids), options.blocks)
        with torch.no_grad():
            net.token_ids.copy_(token_ids)
            net.head.weight.copy_(lm_head_rows(target, token_ids))
        return net

    def objective(self, net, target, token_ids, options: ToyOptions) -> Objective:
        return ToyObjective(net, target.runtime.vocab_size)

    def load(self, config: dict, state: dict) -> ToyNet:
        net = ToyNet(config["hidden"], config["draft_vocab"], config["blocks"])
        net.load_state_dict(state)
        return net


class ToyDrafter:
    hidden_layers = (-1,)

    def __init__(self, net: ToyNet):
        self.net = net.eval()

    def begin(self, prompt_ids: list[int]) -> None:
        pass

    @torch.inference_mode()
    def propose(self, state) -> Draft:
        feats = state.hidden.get(-1)                                   # [k, hidden]
        if feats is None or feats.shape[0] == 0 or state.max_nodes < 1 or state.max_depth < 1:
            return Draft.chain(torch.zeros(0, dtype=torch.long))
        return Draft.chain(self.net.token_ids[self.net(feats[-1]).argmax()].reshape(1).cpu())

    def on_accept(self, result) -> None:
        pass


def make_toy(target, drafter: str | None = None) -> ToyDrafter:
    return ToyDrafter(load_trained(target, "toy", drafter)[0])


@pytest.fixture
def toy_kind():
    """The toy kind and its drafter method, registered for one test only."""
    kind = register_kind(ToyKind())
    drafters.register("toy", "toy drafter (tests only)")(make_toy)
    yield kind
    unregister_kind("toy")
    drafters.DRAFTERS.pop("toy", None)
    drafters.DESCRIPTIONS.pop("toy", None)


@pytest.fixture(scope="module")
def target_and_records():
    target, _ = tiny_target(vocab=16, layers=2, hidden=32, scale=3.0, seed=5, eos={1})
    g = torch.Generator().manual_seed(0)
    records = []
    for _ in range(24):
        prompt = torch.randint(2, 16, (int(torch.randint(3, 12, (1,), generator=g)),), generator=g).tolist()
        response = SpeculativeDecoder(target).generate(prompt, 20).token_ids
        records.append({"prompt_ids": prompt, "response_ids": response})
    return target, records


def settings(tmp_path, steps: int = 20, **kw) -> TrainSettings:
    loop = LoopConfig(steps=steps, lr=3e-3, warmup=3, token_budget=128, eval_every=10, checkpoint_every=10)
    return TrainSettings(draft_vocab=12, eval_prompts=2, work_dir=tmp_path / "work", loop=loop, **kw)


def test_a_registered_kind_trains_saves_loads_and_decodes_like_vanilla(toy_kind, target_and_records, tmp_path):
    target, records = target_and_records
    summary = train_drafter("toy", target, records, tmp_path / "toy", settings(tmp_path, blocks=2), progress=False)
    log = [json.loads(x) for x in (tmp_path / "toy" / "run" / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["train_loss"] < log[0]["train_loss"], log
    assert summary["decode_eval"]["identical_to_vanilla"] == summary["decode_eval"]["prompts"] >= 1
    assert summary["settings"]["blocks"] == 2 and "heads" not in summary["settings"]
    config, state = load_drafter(tmp_path / "toy", "toy")
    assert config["kind"] == "toy" and config["blocks"] == 2 and "blocks.1.weight" in state
    drafter = make_drafter("toy", target, {"drafter": str(tmp_path / "toy")})
    proposed = 0
    for r in records[:4]:
        spec = SpeculativeDecoder(target, drafter).generate(r["prompt_ids"], 16)
        assert spec.token_ids == SpeculativeDecoder(target).generate(r["prompt_ids"], 16).token_ids
        proposed += spec.stats.draft_tokens
    assert proposed > 0                                                      # it drafted: the verifier had work
    warm = settings(tmp_path, steps=2, init=str(tmp_path / "toy"))           # its shape options bind a new run
    with pytest.raises(ConfigError, match="has blocks 2, the run asks for 1"):
        train_drafter("toy", target, records, tmp_path / "warm", warm, progress=False)
    warm.options["blocks"] = 2
    assert train_drafter("toy", target, records, tmp_path / "warm", warm, progress=False)["steps"] == 2


def test_the_registry_names_its_kinds_and_refuses_what_it_lacks(toy_kind, target_and_records, tmp_path):
    target, records = target_and_records
    assert kind_names() == ["distilled", "eagle", "eagle3", "medusa", "toy"] and get_kind("toy") is toy_kind
    with pytest.raises(ConfigError, match="drafter kind 'tyo' is unknown; accepted: distilled, eagle, eagle3, medusa, toy"):
        train_drafter("tyo", target, records, tmp_path / "x", settings(tmp_path), progress=False)
    with pytest.raises(ConfigError, match="training option 'blokcs' is unknown; accepted: .*blocks"):
        train_drafter("toy", target, records, tmp_path / "x", settings(tmp_path, blokcs=2), progress=False)
    with pytest.raises(ConfigError, match="--blocks=0 is invalid; accepted: an integer >= 1"):
        train_drafter("toy", target, records, tmp_path / "x", settings(tmp_path, blocks=0), progress=False)
    class Careless(ToyKind):
        name = "careless"

        def objective(self, net, target, token_ids, options):
            return object()
    register_kind(Careless())
    try:
        with pytest.raises(ConfigError, match="'careless' built an objective without model, needs_evaluation"):
            train_drafter("careless", target, records, tmp_path / "x", settings(tmp_path), progress=False)
    finally:
        unregister_kind("careless")
    with pytest.raises(ConfigError, match="registered already"):
        register_kind(ToyKind())
    assert not (tmp_path / "x").exists()


def test_specdec_train_offers_a_registered_kind_and_its_options(toy_kind):
    from specdec.cli import build_parser
    from specdec.commands.train import kind_options_given
    args = build_parser().parse_args(["train", "toy", "--data", "d", "--out", "o", "--blocks", "3", "--heads", "2"])
    assert args.kind == "toy" and kind_options_given(args) == {"blocks": 3, "heads": 2}
    defaults = build_parser().parse_args(["train", "toy", "--data", "d", "--out", "o"])
    assert kind_options_given(defaults) == {}


def test_registrations_do_not_leak_between_tests():
    assert "toy" not in kind_names() and "toy" not in drafters.DRAFTERS
    with pytest.raises(ConfigError, match="drafter kind 'toy' is unknown; accepted: distilled, eagle, eagle3, medusa$"):
        get_kind("toy")
