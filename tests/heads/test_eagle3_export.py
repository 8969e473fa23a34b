"""`specdec export` of eagle3 heads: each engine's layout (names, shapes, config keys and the fused layers' ids in
that engine's own convention, checked against tables transcribed from its loader code), nothing but the engine's
files in the folder, and the round trip: every layout loads back as the same drafts; a head written here in
SGLang's naming (as SpecForge trains them) loads too; the exported weights give the paper's logits."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from specdec.cli import main
from specdec.drafters import make_drafter
from specdec.engine import SpeculativeDecoder
from specdec.errors import ConfigError
from specdec.export.eagle3 import engine_files, read_engine_dir, write_engine_dir
from specdec.heads.eagle3 import Eagle3Net
from specdec.heads.io import save_drafter, target_fingerprint
from specdec.heads.layer import LayerShape
from tests.heads.test_eagle3 import reference_logits
from tests.tiny import tiny_target

AUX = (0, 1, 3)                      # specdec's naming: outputs of target layers 0, 1 and 3
H, HEADS, KV, D, V = 32, 4, 2, 8, 32
TOKEN_IDS = torch.tensor(sorted({1, 0, 2, 3, 5, 7, 8, 11, 13, 17, 19, 20, 23, 29, 30, 31}))    # draft vocabulary

MIDLAYER = {"input_layernorm.weight": (H,), "hidden_norm.weight": (H,),
            "self_attn.q_proj.weight": (HEADS * D, 2 * H), "self_attn.k_proj.weight": (KV * D, 2 * H),
            "self_attn.v_proj.weight": (KV * D, 2 * H), "self_attn.o_proj.weight": (H, HEADS * D),
            "post_attention_layernorm.weight": (H,), "mlp.gate_proj.weight": (2 * H, H),
            "mlp.up_proj.weight": (2 * H, H), "mlp.down_proj.weight": (H, 2 * H)}
VD = len(TOKEN_IDS)
# vLLM 0.33.0 vllm/model_executor/models/llama_eagle3.py (Eagle3LlamaForCausalLM.load_weights: `midlayer.` ->
# `layers.0.`, `d2t` -> draft_id_to_target_id, `t2d` skipped, no `model.` prefix in the file) and SGLang 0.5.23
# sglang/srt/models/llama_eagle3.py (the same names, `d2t` -> hot_token_id): tensor -> shape.
ENGINE_TENSORS = {"fc.weight": (H, 3 * H), "norm.weight": (H,), "lm_head.weight": (VD, H), "d2t": (VD,),
                  "t2d": (V,), **{"midlayer." + k: s for k, s in MIDLAYER.items()}}
# speculators 0.9.0 speculators/models/eagle3/core.py (Eagle3DraftModel): `layers.0.*`, and the verifier's embedding.
SPECULATORS_TENSORS = {"fc.weight": (H, 3 * H), "norm.weight": (H,), "lm_head.weight": (VD, H), "d2t": (VD,),
                       "t2d": (V,), "embed_tokens.weight": (V, H), **{"layers.0." + k: s for k, s in MIDLAYER.items()}}


@pytest.fixture(scope="module")
def target():
    return tiny_target(vocab=V, layers=4, hidden=H, heads=HEADS, kv_heads=KV, scale=3.0, seed=11)[0]


@pytest.fixture(scope="module")
def drafter_dir(target, tmp_path_factory):
    """A specdec eagle3 drafter (as `specdec train eagle3` saves one), weights random around the target's start."""
    torch.manual_seed(0)
    net = Eagle3Net(LayerShape.of_target(target.runtime.config), VD, AUX)
    net.init_from_target(target, TOKEN_IDS)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn_like(p) * (p.std() if p.numel() > 1 else 1.0))
    config = {"shape": net.shape.__dict__, "draft_vocab": VD, "feature_layers": list(AUX),
              "target": target_fingerprint(target), "decode_defaults": {"depth": 4, "topk": 2, "nodes": 8}}
    return save_drafter(tmp_path_factory.mktemp("eagle3") / "specdec", "eagle3", config, net.state_dict())


def export(drafter_dir, target, engine, out):
    from specdec.heads.io import load_drafter
    config, state = load_drafter(drafter_dir, "eagle3")
    files, tensors = engine_files(config, state, engine, embed=target.runtime.embed.float(), verifier="tiny")
    return write_engine_dir(out, files, tensors, "# readme\n")


def test_each_layout_has_the_engines_names_shapes_and_layer_ids(target, drafter_dir, tmp_path):
    for engine in ("vllm", "sglang", "speculators"):
        out = export(drafter_dir, target, engine, tmp_path / engine)
        assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
        tensors = load_file(str(out / "model.safetensors"))
        table = SPECULATORS_TENSORS if engine == "speculators" else ENGINE_TENSORS
        assert {k: tuple(v.shape) for k, v in tensors.items()} == table
        assert tensors["d2t"].dtype == torch.int64 and tensors["t2d"].dtype == torch.bool
        assert torch.equal(torch.arange(VD) + tensors["d2t"], TOKEN_IDS)      # target id = draft id + d2t
        assert int(tensors["t2d"].sum()) == VD and bool(tensors["t2d"][TOKEN_IDS].all())
        c = json.loads((out / "config.json").read_text())
        layer = c["transformer_layer_config"] if engine == "speculators" else c
        assert (layer["hidden_size"], layer["vocab_size"], layer["num_hidden_layers"]) == (H, V, 1)
        assert (layer["num_attention_heads"], layer["num_key_value_heads"], layer["head_dim"]) == (HEADS, KV, D)
        assert c["draft_vocab_size"] == VD and layer["tie_word_embeddings"] is False
        if engine == "vllm":            # vLLM: top-level ids, the residual stream entering layer k
            assert c["architectures"] == ["LlamaForCausalLMEagle3"] and "eagle_config" not in c
            assert c["eagle_aux_hidden_state_layer_ids"] == [1, 2, 4] and c["norm_before_residual"] is False
        elif engine == "sglang":        # SGLang: eagle_config ids, plus one when captured (the output of layer j)
            assert c["architectures"] == ["LlamaForCausalLMEagle3"]
            assert c["eagle_config"]["eagle_aux_hidden_state_layer_ids"] == [0, 1, 3]
            assert "eagle_aux_hidden_state_layer_ids" not in c
        else:                           # speculators: vLLM's convention
            assert c["architectures"] == ["Eagle3Speculator"] and c["speculators_model_type"] == "eagle3"
            assert c["speculators_config"]["algorithm"] == "eagle3" and layer["model_type"] == "llama"
            assert c["eagle_aux_hidden_state_layer_ids"] == [1, 2, 4]
            assert torch.equal(tensors["embed_tokens.weight"], target.runtime.embed)    # bit for bit


PROMPTS = [torch.randint(0, V, (6,), generator=torch.Generator().manual_seed(i)).tolist() for i in range(3)]


def _decode(target, drafter):
    out = []
    for prompt in PROMPTS:
        res = SpeculativeDecoder(target, drafter).generate(prompt, 20)
        out.append((res.token_ids, res.stats.draft_tokens, res.stats.accepted_per_depth))
    return out


def test_every_layout_loads_back_as_the_same_drafts(target, drafter_dir, tmp_path):
    options = {"fit": False, "depth": 4, "topk": 2, "nodes": 8}    # an engine layout carries no decoding defaults
    want = _decode(target, make_drafter("eagle3", target, {"drafter": str(drafter_dir), **options}))
    assert [w[0] for w in want] == [SpeculativeDecoder(target).generate(p, 20).token_ids for p in PROMPTS]
    assert sum(sum(w[2]) for w in want) > 0                                 # drafts are accepted sometimes
    for engine in ("vllm", "sglang", "speculators"):
        out = export(drafter_dir, target, engine, tmp_path / engine)
        config, _ = read_engine_dir(out, target)
        assert config["feature_layers"] == list(AUX)
        got = _decode(target, make_drafter("eagle3", target, {"drafter": str(out), **options}))
        assert got == want, engine


def test_a_head_in_sglangs_naming_loads(target, drafter_dir, tmp_path):
    """A head as SpecForge writes it for SGLang: `model.`-prefixed `layers.0.*` names, ids in eagle_config, the
    whole target vocabulary (no d2t), written here without specdec's exporter."""
    from specdec.heads.io import load_drafter
    config, state = load_drafter(drafter_dir, "eagle3")
    torch.manual_seed(1)
    rows = torch.randn(V, H) * 0.3
    rows[TOKEN_IDS] = state["lm_head.weight"]
    tensors = {("model." + k.replace("midlayer.", "layers.0.")): v.to(torch.bfloat16)
               for k, v in state.items() if k not in ("token_ids", "lm_head.weight")}
    tensors["lm_head.weight"] = rows.to(torch.bfloat16)
    out = tmp_path / "specforge"
    out.mkdir()
    save_file(tensors, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLMEagle3"], "model_type": "llama", "hidden_size": H, "intermediate_size": 2 * H,
        "num_attention_heads": HEADS, "num_key_value_heads": KV, "num_hidden_layers": 1, "rms_norm_eps": 1e-5,
        "max_position_embeddings": 256, "vocab_size": V, "draft_vocab_size": V, "tie_word_embeddings": False,
        "eagle_config": {"eagle_aux_hidden_state_layer_ids": list(AUX), "use_aux_hidden_state": True}}))
    config2, state2 = read_engine_dir(out, target)
    assert config2["feature_layers"] == list(AUX) and torch.equal(state2["token_ids"], torch.arange(V))
    assert torch.equal(state2["midlayer.self_attn.q_proj.weight"], state["midlayer.self_attn.q_proj.weight"])
    drafter = make_drafter("eagle3", target, {"drafter": str(out), "fit": False})
    prompt = [3, 1, 4, 1, 5, 9]
    assert (SpeculativeDecoder(target, drafter).generate(prompt, 20).token_ids
            == SpeculativeDecoder(target).generate(prompt, 20).token_ids)


def test_exported_weights_give_the_papers_logits(target, drafter_dir, tmp_path):
    """An EAGLE-3 forward written from the equations (tests/heads/test_eagle3.py) over the vLLM file's tensors,
    mapped to target ids through d2t, equals specdec's head loaded from that file."""
    out = export(drafter_dir, target, "vllm", tmp_path / "vllm")
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(out / "model.safetensors")).items()}
    config, state = read_engine_dir(out, target)
    from specdec.train.kinds import get_kind
    net = get_kind("eagle3").load(config, state)
    g = torch.Generator().manual_seed(5)
    aux, emb = torch.randn(6, 3, H, generator=g), torch.randn(6, H, generator=g)
    with torch.no_grad():
        ours = net.logits(net(net.target_input(None, aux).unsqueeze(0), emb.unsqueeze(0), torch.arange(6)))[0]
    want = reference_logits(tensors, aux, emb)
    assert torch.allclose(ours, want, atol=1e-4, rtol=1e-4)
    assert torch.equal(net.token_ids[ours.argmax(-1)], torch.arange(VD)[want.argmax(-1)] + tensors["d2t"][want.argmax(-1)])


def test_what_cannot_be_exported_or_loaded_is_refused(target, drafter_dir, tmp_path, capsys):
    assert main(["export", str(drafter_dir), "--to", "tensorrt", "--out", str(tmp_path / "x")]) == 2
    assert "accepted: vllm, sglang, speculators" in capsys.readouterr().err
    other = save_drafter(tmp_path / "eagle", "eagle", {"target": target_fingerprint(target)}, {"w": torch.zeros(1)})
    assert main(["export", str(other), "--to", "vllm", "--out", str(tmp_path / "y")]) == 2
    assert "holds a 'eagle' drafter, which has no export" in capsys.readouterr().err
    assert main(["export", str(drafter_dir), "--to", "sglang", "--out", str(tmp_path / "ok")]) == 0
    assert "sglang layout" in capsys.readouterr().out
    c = json.loads((tmp_path / "ok" / "config.json").read_text())
    (tmp_path / "ok" / "config.json").write_text(json.dumps({**c, "norm_before_residual": True}))
    with pytest.raises(ConfigError, match="sets norm_before_residual"):
        read_engine_dir(tmp_path / "ok", target)
    (tmp_path / "ok" / "config.json").write_text(json.dumps({**c, "hidden_size": 64}))
    with pytest.raises(ConfigError, match="does not fit"):
        make_drafter("eagle3", target, {"drafter": str(tmp_path / "ok")})
