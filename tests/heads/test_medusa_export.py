"""`specdec export --to vllm` of medusa heads: vLLM's Medusa layout (names, shapes and config keys from a table
transcribed from its loader code), and the heads' logits as vLLM computes them from those tensors (residual SiLU
blocks, one shared output matrix, scattered into the whole vocabulary by token_map) equal specdec's."""

import json

import pytest
import torch
from safetensors.torch import load_file

from specdec.cli import main
from specdec.heads.io import load_drafter, save_drafter, target_fingerprint
from specdec.heads.medusa import MedusaNet
from tests.tiny import tiny_target

H, V, HEADS, LAYERS = 32, 48, 3, 2
TOKEN_IDS = torch.tensor([0, 2, 3, 7, 9, 10, 11, 20, 33, 47])
# vLLM 0.33.0 vllm/model_executor/models/medusa.py (Medusa: blocks[i].layers[j] nn.Linear(H, H, bias=medusa_fc_bias),
# lm_head shared when original_lm_head, token_map of truncated_vocab_size ids) and
# vllm/transformers_utils/configs/medusa.py (MedusaConfig): tensor -> shape.
VLLM_TENSORS = {"lm_head.weight": (len(TOKEN_IDS), H), "token_map": (len(TOKEN_IDS),),
                **{f"blocks.{i}.layers.{j}.{p}": (H, H) if p == "weight" else (H,)
                   for i in range(HEADS) for j in range(LAYERS) for p in ("weight", "bias")}}
VLLM_CONFIG = {"architectures": ["MedusaModel"], "model_type": "medusa", "hidden_size": H, "vocab_size": V,
               "num_heads": HEADS, "num_hidden_layers": LAYERS, "truncated_vocab_size": len(TOKEN_IDS),
               "original_lm_head": True, "medusa_fc_bias": True}


@pytest.fixture(scope="module")
def target():
    return tiny_target(vocab=V, layers=2, hidden=H, heads=4, kv_heads=2, seed=3)[0]


@pytest.fixture(scope="module")
def drafter_dir(target, tmp_path_factory):
    torch.manual_seed(0)
    net = MedusaNet(H, HEADS, len(TOKEN_IDS), LAYERS)
    net.init_from_target(target, TOKEN_IDS)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    config = {"hidden": H, "num_heads": HEADS, "draft_vocab": len(TOKEN_IDS), "layers_per_head": LAYERS,
              "target": target_fingerprint(target), "decode_defaults": {"nodes": 8}}
    return save_drafter(tmp_path_factory.mktemp("medusa") / "specdec", "medusa", config, net.state_dict())


def _vllm_logits(tensors: dict, config: dict, features: torch.Tensor) -> torch.Tensor:
    """What vLLM's Medusa computes from the exported tensors: [heads, t, vocab], -inf outside token_map."""
    out = []
    for i in range(config["num_heads"]):
        x = features
        for j in range(config["num_hidden_layers"]):
            w, b = tensors[f"blocks.{i}.layers.{j}.weight"].float(), tensors[f"blocks.{i}.layers.{j}.bias"].float()
            x = x + torch.nn.functional.silu(x @ w.t() + b)
        full = torch.full((*x.shape[:-1], config["vocab_size"]), float("-inf"))
        full[..., tensors["token_map"]] = x @ tensors["lm_head.weight"].float().t()
        out.append(full)
    return torch.stack(out)


def test_vllm_layout_and_its_logits_are_specdecs(target, drafter_dir, tmp_path, capsys):
    out = tmp_path / "vllm"
    assert main(["export", str(drafter_dir), "--to", "vllm", "--out", str(out)]) == 0
    assert "vllm Medusa layout" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    tensors = load_file(str(out / "model.safetensors"))
    assert {k: tuple(v.shape) for k, v in tensors.items()} == VLLM_TENSORS
    assert torch.equal(tensors["token_map"], TOKEN_IDS)
    config = json.loads((out / "config.json").read_text())
    assert {k: config[k] for k in VLLM_CONFIG} == VLLM_CONFIG
    assert '"method": "medusa"' in (out / "README.md").read_text()

    cfg, state = load_drafter(drafter_dir, "medusa")
    net = MedusaNet(H, HEADS, len(TOKEN_IDS), LAYERS)
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    features = torch.randn(5, H, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        mine = net(features)                                       # [t, heads, draft vocab]
    theirs = _vllm_logits(tensors, config, features)               # [heads, t, vocab]
    torch.testing.assert_close(theirs[:, :, TOKEN_IDS], mine.transpose(0, 1), rtol=1e-5, atol=1e-5)
    assert bool(torch.isinf(theirs[:, :, [1, 4, 5]]).all())         # outside the draft vocabulary: never proposed


def test_medusa_goes_to_vllm_only(drafter_dir, tmp_path, capsys):
    assert main(["export", str(drafter_dir), "--to", "sglang", "--out", str(tmp_path / "x")]) == 2
    assert "for medusa heads; accepted: vllm" in capsys.readouterr().err
