"""`specdec export` of a `distilled` drafter: a plain Hugging Face Llama directory. Names and shapes are checked
against transformers' own LlamaForCausalLM (a strict load, so a self-consistent but wrong naming fails); its
logits are specdec's drafter's on the draft vocabulary and the target's output rows elsewhere; the CLI writes the
tokenizer beside it, and the kinds without an export are refused with the reason."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM

from specdec.cli import main
from specdec.export.llama import llama_files
from specdec.heads.distilled import DistilledNet
from specdec.heads.io import load_drafter, save_drafter, target_fingerprint
from specdec.heads.layer import LayerShape
from specdec.heads.target import lm_head_rows
from specdec.models.load import load_model
from tests.tiny import write_hf_dir

TOKEN_IDS = torch.tensor([0, 1, 2, 3, 5, 8, 13, 21, 34, 40, 41, 42])      # draft vocabulary (tiny tokenizer ids)


@pytest.fixture(scope="module")
def target_dir(tmp_path_factory):
    return write_hf_dir(tmp_path_factory.mktemp("target") / "tiny", layers=3, hidden=32, heads=4, kv_heads=2,
                        seed=4)[0]


@pytest.fixture(scope="module")
def target(target_dir):
    return load_model(str(target_dir), quiet=True)


@pytest.fixture(scope="module")
def drafter_dir(target, tmp_path_factory):
    """A specdec distilled drafter as `specdec train distilled` saves one: two layers, a reduced vocabulary, its
    own rotary base, weights moved away from the target's."""
    torch.manual_seed(0)
    shape = LayerShape.of_target(target.runtime.config, rope_theta=500.0)
    net = DistilledNet(shape, 2, len(TOKEN_IDS))
    net.init_from_target(target, TOKEN_IDS, [0, 2])
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn_like(p) * (p.std() if p.numel() > 1 else 1.0))
    config = {"shape": shape.__dict__, "num_layers": 2, "draft_vocab": len(TOKEN_IDS),
              "target": target_fingerprint(target), "decode_defaults": {"num_draft": 4}}
    return save_drafter(tmp_path_factory.mktemp("distilled") / "specdec", "distilled", config, net.state_dict())


def _exported(target, drafter_dir):
    config, state = load_drafter(drafter_dir, "distilled")
    vocab = torch.arange(target.runtime.vocab_size)
    return config, state, llama_files(config, state, target.runtime.embed, lm_head_rows(target, vocab))


def test_the_names_and_shapes_are_transformers_llama_and_the_logits_are_the_drafters(target, drafter_dir):
    config, state, (files, tensors) = _exported(target, drafter_dir)
    model = LlamaForCausalLM(LlamaConfig(**files)).float().eval()
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in tensors.items()} == want
    model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    assert torch.equal(tensors["model.embed_tokens.weight"], target.runtime.embed)      # bit for bit

    net = DistilledNet(LayerShape(**config["shape"]), config["num_layers"], config["draft_vocab"]).float()
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    ids = torch.randint(0, target.runtime.vocab_size, (1, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
        mine = net(target.runtime.embed[ids].float(), torch.arange(12))[0]
    logits = out.logits[0]
    torch.testing.assert_close(logits[:, TOKEN_IDS], mine, rtol=1e-4, atol=1e-4)
    others = torch.ones(target.runtime.vocab_size, dtype=torch.bool)
    others[TOKEN_IDS] = False
    rows = lm_head_rows(target, torch.arange(target.runtime.vocab_size)).to(torch.bfloat16).float()
    torch.testing.assert_close(logits[:, others], out.hidden_states[-1][0] @ rows[others].t(), rtol=1e-4, atol=1e-4)
    assert files["rope_parameters"]["rope_theta"] == files["rope_theta"] == 500.0     # a non-default base, kept


def test_the_cli_writes_a_folder_that_loads_on_its_own(target_dir, drafter_dir, tmp_path, capsys):
    out = tmp_path / "draft"
    assert main(["export", str(drafter_dir), "--to", "vllm", "--target", str(target_dir), "--out", str(out)]) == 0
    assert "Hugging Face Llama layout for vllm" in capsys.readouterr().out
    names = sorted(p.name for p in out.iterdir())
    assert {"config.json", "model.safetensors", "README.md", "tokenizer.json"} <= set(names)
    assert not any("specdec" in n for n in names)
    c = json.loads((out / "config.json").read_text())
    assert c["architectures"] == ["LlamaForCausalLM"] and c["num_hidden_layers"] == 2
    assert c["eos_token_id"] == json.loads((target_dir / "config.json").read_text())["eos_token_id"]
    assert '"method": "draft_model"' in (out / "README.md").read_text()
    loaded = LlamaForCausalLM.from_pretrained(str(out))
    assert set(loaded.state_dict()) == set(load_file(str(out / "model.safetensors")))
    from transformers import AutoTokenizer
    assert AutoTokenizer.from_pretrained(str(out)).vocab_size > 0


def test_wrong_engines_and_kinds_without_an_export_are_refused(target_dir, drafter_dir, target, tmp_path, capsys):
    assert main(["export", str(drafter_dir), "--to", "speculators", "--target", str(target_dir),
                 "--out", str(tmp_path / "x")]) == 2
    assert "for a distilled drafter; accepted: hf, vllm, sglang" in capsys.readouterr().err
    d = save_drafter(tmp_path / "eagle", "eagle", {"target": target_fingerprint(target)}, {"w": torch.zeros(1)})
    assert main(["export", str(d), "--to", "vllm", "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert "holds a 'eagle' drafter, which has no export" in err and "skips that norm" in err
