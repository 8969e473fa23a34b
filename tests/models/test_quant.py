"""4-bit weights (`dtype="q4"`): exact recovery of 4-bit affine groups, the kernel against a dense reference, and
the property greedy equality rests on: scoring k tokens in one pass gives bit for bit the logits of k
single-token passes (chains and trees), so speculative output equals vanilla output."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from specdec.config import SamplingParams
from specdec.drafters.pld import PromptLookupDrafter
from specdec.engine import SpeculativeDecoder
from specdec.errors import ConfigError
from specdec.models.config import DecoderConfig
from specdec.models.llama import LlamaRuntime
from specdec.models.quant import (
    DENSE_ROWS,
    PackedLinear,
    Q4Linear,
    dequantize_q4,
    quantize_q4,
)
from specdec.tree import tree_inputs
from tests.distribution import two_token_tv
from tests.tiny import tiny_hf_model, tiny_target


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 3), st.integers(1, 4))
def test_weights_that_are_4bit_affine_per_group_come_back_exactly(seed, out16, groups):
    """A dequantised Q4_1 tensor (each group low + scale * code, codes 0 and 15 present) is recovered code for code."""
    g = torch.Generator().manual_seed(seed)
    out, inp = 16 * out16, 32 * groups
    codes = torch.randint(0, 16, (out, inp), generator=g, dtype=torch.int32)
    codes[:, ::32], codes[:, 1::32] = 0, 15                       # llama.cpp's Q4_1 maps a group's min/max there
    scale = torch.rand(out, groups, generator=g) * 0.1 + 1e-3
    low = torch.randn(out, groups, generator=g) * 0.2
    w = dequantize_q4(codes, scale, low)
    got_codes, got_scale, got_low = quantize_q4(w)
    assert torch.equal(got_codes, codes)
    assert torch.allclose(dequantize_q4(got_codes, got_scale, got_low), w, rtol=0, atol=1e-6)


def test_any_weights_round_to_the_nearest_code():
    w = torch.randn(32, 96, generator=torch.Generator().manual_seed(0))
    w[3, 32:64] = 0.7                                             # a constant group
    codes, scale, low = quantize_q4(w)
    err = (dequantize_q4(codes, scale, low) - w).abs().reshape(32, 3, 32)
    assert (err <= scale[..., None] / 2 + 1e-6).all()
    assert codes.min() >= 0 and codes.max() <= 15 and err[3, 1].max() == 0


@pytest.mark.parametrize("rows", [1, 3, 16, DENSE_ROWS + 5])
def test_q4_linear_matches_the_dense_product_of_its_weights(rows):
    g = torch.Generator().manual_seed(1)
    w, b, x = torch.randn(48, 64, generator=g), torch.randn(48, generator=g), torch.randn(2, rows, 64, generator=g)
    lin = Q4Linear(w, b)
    ref = x @ dequantize_q4(*quantize_q4(w)).t() + b
    got = lin(x)
    assert got.shape == (2, rows, 48) and got.dtype == torch.float32
    assert (got - ref).abs().max() < 0.02 * ref.abs().max()      # bfloat16 activations and scales
    assert (lin.weight.t() - dequantize_q4(*quantize_q4(w))).abs().max() < 0.02 * w.abs().max()


@pytest.mark.parametrize("make", [lambda w: Q4Linear(w), lambda w: PackedLinear(w, torch.float32),
                                  lambda w: PackedLinear(w, torch.bfloat16)], ids=["q4", "packed-fp32", "packed-bf16"])
def test_each_row_comes_out_the_same_whatever_the_number_of_rows(make):
    g = torch.Generator().manual_seed(2)
    lin, x = make(torch.randn(320, 192, generator=g)), torch.randn(DENSE_ROWS - 1, 192, generator=g)
    full = lin(x)
    for rows in (1, 2, 3, 4, 7, 8, 16, 33):
        assert torch.equal(lin(x[:rows]), full[:rows]), rows


def _q4_target(**kw):
    """Heads shaped like SmolLM2's (head_dim 64, 3 query heads per KV head): the attention kernel's blocking,
    which exact rows must sidestep, depends on those sizes."""
    return tiny_target(vocab=40, layers=2, hidden=192, heads=3, kv_heads=1, quant="q4", **kw)[0]


@pytest.mark.parametrize("prefix", [20, 100, 500])
def test_k_tokens_in_one_pass_equal_k_single_token_passes_bit_for_bit(prefix):
    """Chains of k new tokens after prefixes of several lengths (the attention kernel blocks by length)."""
    rt = _q4_target(seed=3, context=640).runtime
    ids = torch.randint(0, 40, (1, prefix + 16), generator=torch.Generator().manual_seed(4))
    one = rt.new_cache(640)
    rt.forward(ids[:, :prefix], one, logits="none")
    singles = torch.cat([rt.forward(ids[:, i:i + 1], one).logits for i in range(prefix, prefix + 16)], dim=1)
    for k in (2, 5, 8, 16):
        cache = rt.new_cache(640)
        rt.forward(ids[:, :prefix], cache, logits="none")
        chunks = [rt.forward(ids[:, i:i + k], cache).logits for i in range(prefix, prefix + 16, k)]
        assert torch.equal(torch.cat(chunks, dim=1)[:, :16], singles), k


@pytest.mark.parametrize("prefix", [12, 100])
def test_a_tree_pass_equals_single_token_passes_along_each_path_bit_for_bit(prefix):
    rt = _q4_target(seed=5).runtime
    prompt = torch.randint(0, 40, (1, prefix), generator=torch.Generator().manual_seed(6))
    parents, tokens, root = torch.tensor([-1, 0, 0, 1, -1, 4, 2]), torch.tensor([5, 6, 7, 8, 9, 10, 11]), 3
    cache = rt.new_cache(128)
    rt.forward(prompt, cache, logits="none")
    mask, positions = tree_inputs(parents, cache.length)
    tree = rt.forward(torch.cat([torch.tensor([root]), tokens])[None], cache, positions=positions,
                      tree_mask=mask).logits[0]
    for path in ([0, 1, 3], [0, 2, 6], [4, 5]):
        seq = rt.new_cache(128)
        rt.forward(prompt, seq, logits="none")
        rows = [rt.forward(torch.tensor([[t]]), seq).logits[0, 0] for t in [root] + tokens[path].tolist()]
        assert torch.equal(tree[[0] + [i + 1 for i in path]], torch.stack(rows))


@pytest.mark.parametrize("t", [24, DENSE_ROWS + 6])              # the 4-bit kernel, the dense (prefill) path
def test_q4_logits_equal_float32_logits_of_the_same_4bit_weights_up_to_bfloat16(t):
    """Weights that are already 4-bit (as a Q4_1 GGUF's): q4 differs from float32 only by bfloat16 rounding."""
    hf = tiny_hf_model(vocab=40, layers=2, hidden=64, heads=4, kv_heads=2, seed=7, context=128)
    state = {k: dequantize_q4(*quantize_q4(v)) if v.dim() == 2 and "embed" not in k and "lm_head" not in k else v
             for k, v in hf.state_dict().items()}
    ref_rt = LlamaRuntime(DecoderConfig.from_hf(hf.config), state)
    q4 = LlamaRuntime(DecoderConfig.from_hf(hf.config), state, quant="q4")
    ids = torch.randint(0, 40, (1, t), generator=torch.Generator().manual_seed(8))
    ref = ref_rt.forward(ids, ref_rt.new_cache(t)).logits
    got = q4.forward(ids, q4.new_cache(t)).logits
    assert (got - ref).abs().max() < 0.02 * ref.abs().max()


@pytest.mark.parametrize("options", [{}, {"min_ngram": 1, "branches": 3}])
def test_pld_greedy_equals_vanilla_in_q4(options):
    target = tiny_target(vocab=12, layers=2, hidden=32, scale=3.0, seed=11, quant="q4")[0]
    vanilla = SpeculativeDecoder(target)
    g = torch.Generator().manual_seed(0)
    accepted = 0
    for _ in range(6):
        prompt = torch.randint(0, 12, (20,), generator=g).tolist() * 2
        spec = SpeculativeDecoder(target, PromptLookupDrafter(**options)).generate(prompt, 30)
        assert spec.token_ids == vanilla.generate(prompt, 30).token_ids
        accepted += spec.stats.emitted_tokens - spec.stats.target_forwards
    assert accepted > 0


def test_pld_sampling_keeps_the_q4_target_distribution():
    target = tiny_target(vocab=6, layers=1, hidden=32, heads=2, kv_heads=1, scale=2.0, seed=7, quant="q4")[0]
    prompt = [0, 3, 2, 0, 3, 2, 5, 0, 3]
    tv, bound = two_token_tv(target, prompt, SamplingParams(temperature=1.0),
                             lambda i: PromptLookupDrafter(min_ngram=1, branches=2), 2000)
    assert tv < bound, (tv, bound)


def test_q4_refuses_what_it_cannot_run():
    hf = tiny_hf_model(vocab=40, layers=1, hidden=48, heads=4, kv_heads=2)
    with pytest.raises(ConfigError, match=r"multiple of 32.*layer 0 qkv is \[96, 48\]"):
        LlamaRuntime(DecoderConfig.from_hf(hf.config), hf.state_dict(), quant="q4")
    hf = tiny_hf_model(vocab=40, layers=1, hidden=32)
    with pytest.raises(ConfigError, match="CPU only"):
        LlamaRuntime(DecoderConfig.from_hf(hf.config), hf.state_dict(), quant="q4", device="cuda")
    with pytest.raises(ConfigError, match="accepted"):
        LlamaRuntime(DecoderConfig.from_hf(hf.config), hf.state_dict(), quant="q8")
