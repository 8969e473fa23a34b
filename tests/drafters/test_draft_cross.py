"""A draft model with another tokenizer: bytes of every token, the two translation paths (a token map for a
permuted vocabulary, re-encoding for a different segmentation), greedy identical to vanilla alone and in a
batch, the target's sampling distribution, and clear errors for pairs that cannot translate."""

import copy
import dataclasses
import json

import pytest
import torch

from specdec.config import SamplingParams
from specdec.drafters import make_drafter
from specdec.drafters.draft_cross import CrossTokenizerDrafter
from specdec.drafters.draft_model import draft_for
from specdec.drafters.translate import PROBE, TokenMap, Untranslatable, Vocabulary, check_pair
from specdec.engine import SpeculativeDecoder
from specdec.errors import ConfigError
from specdec.models.config import DecoderConfig
from specdec.models.llama import LlamaRuntime
from specdec.models.load import LoadedModel
from tests.distribution import two_token_tv
from tests.tiny import tiny_target, tiny_tokenizer, wrap_tokenizer

TEXTS = ["the quick brown fox", "hello world, what is the capital", "speculative decoding drafts tokens",
         "Größe café 東京 🙂 and the lazy dog"]


def permuted(tok, seed: int = 0):
    """The same tokenizer with its plain tokens' ids shuffled (same merges, so the same segmentation)."""
    from tokenizers import Tokenizer
    spec = json.loads(tok.backend_tokenizer.to_str())
    specials = {t["id"] for t in spec["added_tokens"]}
    plain = sorted(set(spec["model"]["vocab"].values()) - specials)
    order = torch.randperm(len(plain), generator=torch.Generator().manual_seed(seed)).tolist()
    perm = {a: plain[b] for a, b in zip(plain, order)}
    spec["model"]["vocab"] = {piece: perm.get(i, i) for piece, i in spec["model"]["vocab"].items()}
    return wrap_tokenizer(Tokenizer.from_str(json.dumps(spec)))


def lowercasing(tok):
    """The same tokenizer with a lowercasing normalizer: it cannot reproduce text with capitals."""
    from tokenizers import Tokenizer
    spec = json.loads(tok.backend_tokenizer.to_str())
    spec["normalizer"] = {"type": "Lowercase"}
    return wrap_tokenizer(Tokenizer.from_str(json.dumps(spec)))


def draft_model(hf, target_tok, draft_tok, noise: float = 0.0, seed: int = 0) -> LoadedModel:
    """A draft with `draft_tok`: the target's layers (plus noise), each of its token rows copied from the target
    token with the same string (random rows for the others)."""
    g = torch.Generator().manual_seed(seed)
    tv, dv = target_tok.get_vocab(), draft_tok.get_vocab()
    state = {}
    for key, w in hf.state_dict().items():
        if key in ("model.embed_tokens.weight", "lm_head.weight"):
            rows = torch.randn(len(dv), w.shape[1], generator=g) * w.std()
            for piece, i in dv.items():
                if piece in tv:
                    rows[i] = w[tv[piece]]
            w = rows
        state[key] = w + noise * torch.randn(w.shape, generator=g) * w.std() if w.dim() == 2 else w
    config = copy.deepcopy(hf.config)
    config.vocab_size = len(dv)
    return LoadedModel("draft", LlamaRuntime(DecoderConfig.from_hf(config), state), draft_tok, set(), "memory")


@pytest.fixture(scope="module")
def setup():
    tok = tiny_tokenizer(300)
    target, hf = tiny_target(vocab=len(tok), layers=2, hidden=32, scale=3.0, seed=5)
    target = dataclasses.replace(target, name="tiny-target", tokenizer=tok)
    prompts = [tok(t, add_special_tokens=False)["input_ids"] for t in TEXTS]
    vanilla = [SpeculativeDecoder(target).generate(p, 24).token_ids for p in prompts]
    return target, hf, tok, prompts, vanilla


# --- bytes --------------------------------------------------------------------------------------------------------

def test_every_token_has_the_bytes_the_tokenizer_decodes_to(setup):
    _, _, tok, _, _ = setup
    vocab = Vocabulary(tok)
    for text in TEXTS + [PROBE]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert vocab.join(ids) == text.encode()
        assert vocab.encode(text.encode()) == ids
    assert sorted(vocab.byte_token) == list(range(256))            # a byte-level vocabulary has every byte
    assert vocab.join([tok.convert_tokens_to_ids("<|im_end|>")]) == b"<|im_end|>"


def test_bytes_of_a_split_character_are_encoded_as_single_byte_tokens(setup):
    _, _, tok, _, _ = setup
    vocab = Vocabulary(tok)
    data = "a 東京".encode()[:-1]                                   # ends inside the last character
    ids = vocab.encode(data)
    assert vocab.join(ids) == data
    assert all(len(vocab.bytes[i]) == 1 for i in ids[-2:])
    assert vocab.last_word_start(b"the quick brown") == len(b"the quick")
    assert vocab.last_word_start(b"brown") == 0


def test_token_map_of_a_permutation_is_total_and_of_a_smaller_vocabulary_partial(setup):
    _, _, tok, _, _ = setup
    target = Vocabulary(tok)
    perm = TokenMap(target, Vocabulary(permuted(tok)))
    assert perm.coverage == 1.0
    ids = tok("the lazy dog", add_special_tokens=False)["input_ids"]
    assert permuted(tok).decode(perm(ids)) == "the lazy dog"
    small = Vocabulary(tiny_tokenizer(270))
    assert TokenMap(small, target).coverage == 1.0 and 0.85 < TokenMap(target, small).coverage < 0.95


def test_a_tokenizer_that_cannot_reproduce_text_is_refused(setup):
    target, hf, tok, _, _ = setup
    bad = lowercasing(tok)
    with pytest.raises(Untranslatable):
        Vocabulary(bad).encode(b"Hello")
    with pytest.raises(ConfigError, match="cannot reproduce text byte for byte.*accepted"):
        check_pair(Vocabulary(tok), Vocabulary(bad), "target", "draft")
    with pytest.raises(ConfigError, match="cannot reproduce"):
        draft_for(target, draft_model(hf, tok, lowercasing(tiny_tokenizer(270))))   # another vocabulary


def test_options_a_cross_tokenizer_draft_cannot_take_are_refused(setup):
    target, hf, tok, _, _ = setup
    other = draft_model(hf, tok, tiny_tokenizer(270))
    for options in ({"fit": True}, {"branches": 2}):
        with pytest.raises(ConfigError, match="not available with a draft model of another tokenizer"):
            draft_for(target, other, **options)
    with pytest.raises(ConfigError, match="translate='bogus'; accepted: auto, map, retokenize"):
        draft_for(target, other, translate="bogus")
    same = draft_model(hf, tok, tok)
    with pytest.raises(ConfigError, match="needs a draft model with another tokenizer"):
        draft_for(target, same, translate="retokenize")
    assert type(draft_for(target, same)).__name__ == "DraftModelDrafter"          # same tokenizer: token for token


def test_a_model_without_a_tokenizer_is_refused_as_before(setup):
    target, _, _, _, _ = setup
    other, _ = tiny_target(vocab=40, layers=1, hidden=16)
    with pytest.raises(ConfigError, match="does not share the tokenizer"):
        draft_for(target, other)


# --- decoding ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pair", ["permuted", "segmented"])
def test_greedy_equals_vanilla_alone_and_in_a_batch(setup, pair):
    """permuted: the draft's vocabulary is a shuffle of the target's (auto picks the token map). segmented: the
    draft's tokenizer has fewer merges, so it cuts words differently (auto picks re-encoding)."""
    target, hf, tok, prompts, vanilla = setup
    draft_tok = permuted(tok) if pair == "permuted" else tiny_tokenizer(270)
    drafter = draft_for(target, draft_model(hf, tok, draft_tok, noise=0.05), num_draft=4, adaptive=False)
    assert isinstance(drafter, CrossTokenizerDrafter)
    assert drafter.path == ("map" if pair == "permuted" else "retokenize")
    accepted, paths = 0, {}
    for prompt, expected in zip(prompts, vanilla):
        res = SpeculativeDecoder(target, drafter).generate(prompt, 24)
        assert res.token_ids == expected
        accepted += res.stats.emitted_tokens - res.stats.target_forwards
        for key, n in res.stats.drafter.items():
            paths[key] = paths.get(key, 0) + n
    assert accepted > len(prompts) * 5                              # the drafts are really used
    assert paths[f"translate_{drafter.path}"] > 0 and set(paths) == {
        "translate_map", "translate_retokenize", "translate_empty"}
    if pair == "segmented":
        assert paths["translate_map"] == 0
    batched = SpeculativeDecoder(target, drafter).generate_many(prompts, 24, max_num_seqs=3)
    assert [r.token_ids for r in batched] == vanilla


def test_the_target_itself_under_a_permuted_vocabulary_is_accepted_in_full(setup):
    target, hf, tok, prompts, vanilla = setup
    drafter = draft_for(target, draft_model(hf, tok, permuted(tok)), num_draft=4, adaptive=False)
    res = SpeculativeDecoder(target, drafter).generate(prompts[0], 40)
    assert res.token_ids == SpeculativeDecoder(target).generate(prompts[0], 40).token_ids
    assert res.stats.mean_accepted_length > 4.0
    assert res.stats.drafter["translate_map"] == res.stats.target_forwards - res.stats.drafter["translate_empty"]


def test_forced_retokenizing_of_a_permuted_pair_also_equals_vanilla(setup):
    target, hf, tok, prompts, vanilla = setup
    drafter = draft_for(target, draft_model(hf, tok, permuted(tok)), translate="retokenize")
    res = SpeculativeDecoder(target, drafter).generate(prompts[1], 24)
    assert res.token_ids == vanilla[1]
    assert res.stats.drafter["translate_map"] == 0 and res.stats.drafter["translate_retokenize"] > 0
    assert res.stats.emitted_tokens > res.stats.target_forwards


def test_the_method_option_reaches_the_cross_tokenizer_drafter(setup, tmp_path):
    target, hf, tok, prompts, vanilla = setup
    draft = draft_model(hf, tok, tiny_tokenizer(270))
    drafter = draft_for(target, draft, translate="map", map_threshold=0.5)
    assert drafter.path == "map"
    assert SpeculativeDecoder(target, drafter).generate(prompts[2], 24).token_ids == vanilla[2]
    with pytest.raises(ConfigError, match="needs a draft model"):
        make_drafter("draft", target, {})


@pytest.mark.parametrize("pair", ["permuted", "segmented"])
def test_sampling_keeps_the_target_distribution(setup, pair):
    target, hf, tok, prompts, _ = setup
    draft_tok = permuted(tok) if pair == "permuted" else tiny_tokenizer(270)
    proto = draft_for(target, draft_model(hf, tok, draft_tok, noise=0.3), num_draft=3)
    sampling = SamplingParams(temperature=0.9, top_k=3)
    tv, bound = two_token_tv(target, prompts[0], sampling, lambda i: proto.fork(), 1500)
    assert tv < bound, (tv, bound)


def test_a_one_token_budget_still_drafts_whole_words(setup):
    """The budget counts target tokens: with one, the draft continues until a whole word translates (the open
    last word never counts), instead of proposing nothing step after step."""
    target, hf, tok, prompts, vanilla = setup
    drafter = draft_for(target, draft_model(hf, tok, tiny_tokenizer(270), noise=0.05), num_draft=1, adaptive=False)
    steps = {"translate_retokenize": 0, "translate_empty": 0}
    for prompt, expected in zip(prompts, vanilla):
        res = SpeculativeDecoder(target, drafter).generate(prompt, 24)
        assert res.token_ids == expected
        assert res.stats.draft_tokens <= res.stats.target_forwards               # at most one token a step
        for key in steps:
            steps[key] += res.stats.drafter[key]
    assert steps["translate_retokenize"] > 3 * steps["translate_empty"], steps
