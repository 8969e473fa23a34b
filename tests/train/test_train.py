"""Training on a tiny target: each objective lowers its loss, an interrupted run resumes to the very same
parameters, the saved drafter loads by directory and decodes identically to vanilla; plus data loading."""

import json

import pytest
import torch

from specdec.drafters import make_drafter
from specdec.engine import SpeculativeDecoder
from specdec.errors import ConfigError
from specdec.heads.io import load_drafter
from specdec.train.features import load_features
from specdec.train.loop import LoopConfig
from specdec.train.pipeline import TrainSettings, train_drafter
from specdec.train.prompts import load_prompts
from tests.tiny import tiny_target


@pytest.fixture(scope="module")
def target_and_records():
    target, _ = tiny_target(vocab=16, layers=2, hidden=32, scale=3.0, seed=5, eos={1})
    g = torch.Generator().manual_seed(0)
    records = []
    for _ in range(24):          # prompts of random tokens; responses are the target's own greedy output
        prompt = torch.randint(2, 16, (int(torch.randint(3, 12, (1,), generator=g)),), generator=g).tolist()
        out = SpeculativeDecoder(target).generate(prompt, 20)
        records.append({"prompt_ids": prompt, "response_ids": out.token_ids})
    return target, records


def settings(tmp_path, steps=30, **kw):
    loop = LoopConfig(steps=steps, lr=3e-3, warmup=3, token_budget=128, eval_every=10, checkpoint_every=10)
    return TrainSettings(draft_vocab=12, heads=2, layers=1, unroll=2, eval_prompts=2, work_dir=tmp_path / "work",
                         loop=loop, **kw)


@pytest.mark.parametrize("kind, extra", [("eagle", {}), ("eagle", {"fuse_layers": (0,)}),
                                         ("eagle", {"feature_weight": 0.0, "cls_weight": 1.0}), ("medusa", {}),
                                         ("distilled", {}), ("eagle3", {})],
                         ids=["eagle", "eagle-fused", "eagle-cls-only", "medusa", "distilled", "eagle3"])
def test_training_lowers_loss_and_the_saved_drafter_decodes_losslessly(kind, extra, target_and_records, tmp_path):
    target, records = target_and_records
    summary = train_drafter(kind, target, records, tmp_path / kind, settings(tmp_path, **extra), progress=False)
    log = [json.loads(x) for x in (tmp_path / kind / "run" / "train_log.jsonl").read_text().splitlines()]
    if extra.get("feature_weight") == 0 or kind == "eagle3":   # cross-entropy alone: bounded below by the teacher's entropy
        assert log[-1]["train_loss"] < log[0]["train_loss"], log
    else:
        assert log[-1]["train_loss"] < log[0]["train_loss"] * 0.9 or log[-1]["train_loss"] < 0.05, log
    assert summary["decode_eval"]["identical_to_vanilla"] == summary["decode_eval"]["prompts"] >= 1
    config, _ = load_drafter(tmp_path / kind, kind)
    assert config["target"]["name"] == target.name and config["draft_vocab"] == 12
    drafter = make_drafter(kind, target, {"drafter": str(tmp_path / kind)})
    prompt = records[0]["prompt_ids"]
    assert (SpeculativeDecoder(target, drafter).generate(prompt, 16).token_ids
            == SpeculativeDecoder(target).generate(prompt, 16).token_ids)


@pytest.mark.parametrize("kind", ["eagle", "medusa"])
def test_resume_continues_the_same_run(kind, target_and_records, tmp_path):
    target, records = target_and_records
    s = settings(tmp_path, steps=12)
    train_drafter(kind, target, records, tmp_path / "straight", s, progress=False)
    partial = train_drafter(kind, target, records, tmp_path / "resumed", s, progress=False, stop_after=5)
    assert partial == {"stopped_at_step": 5}
    train_drafter(kind, target, records, tmp_path / "resumed", s, progress=False)
    _, a = load_drafter(tmp_path / "straight", kind)
    _, b = load_drafter(tmp_path / "resumed", kind)
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_a_fused_head_reads_the_extra_layers_and_moves_its_fusion(target_and_records, tmp_path):
    target, records = target_and_records
    train_drafter("eagle", target, records, tmp_path / "e", settings(tmp_path, steps=20, fuse_layers=(0,)),
                  progress=False)
    config, state = load_drafter(tmp_path / "e", "eagle")
    assert config["feature_layers"] == [-1, 0]
    h = target.runtime.config.hidden_size
    moved = state["fuse.weight"][:, h:].float()
    assert moved.abs().max() > 0                          # the layer-0 block left its zero start: it is used
    drafter = make_drafter("eagle", target, {"drafter": str(tmp_path / "e")})
    assert drafter.hidden_layers == (-1, 0)
    features = sorted((tmp_path / "work").glob("features-*-L0"))
    assert len(features) == 1 and load_features(features[0])[0].extras.shape[1:] == (1, h)
    with pytest.raises(ConfigError, match="fuse layers"):
        train_drafter("eagle", target, records, tmp_path / "bad", settings(tmp_path, fuse_layers=(2,)),
                      progress=False)


@pytest.mark.parametrize("weights", [(0.0, 0.0), (-1.0, 0.1), (1.0, float("nan"))])
def test_bad_eagle_loss_weights_are_refused(weights, target_and_records, tmp_path):
    target, records = target_and_records
    s = settings(tmp_path, feature_weight=weights[0], cls_weight=weights[1])
    with pytest.raises(ConfigError, match="weight"):
        train_drafter("eagle", target, records, tmp_path / "bad", s, progress=False)
    assert not (tmp_path / "bad").exists()


def test_eagle_loss_weights_shape_the_loss(target_and_records, tmp_path):
    """The regression term counts only with its weight: weights (1, 0.1) and (0, 1) give different losses, and
    (0, 1) is the pure cross-entropy."""
    from specdec.heads.eagle import EagleNet
    from specdec.heads.layer import LayerShape
    from specdec.heads.target import embedding, lm_head_rows
    from specdec.train.batches import SequenceStore
    from specdec.train.eagle import EagleObjective
    from specdec.train.features import extract_features
    target, records = target_and_records
    seqs = extract_features(target, records[:4], tmp_path / "features")
    ids = torch.arange(12)
    net = EagleNet(LayerShape.of_target(target.runtime.config), 12)
    net.init_from_target(target, ids)
    net.to(target.runtime.device)
    embed, rows = embedding(target).float(), lm_head_rows(target, ids).float()
    batch = SequenceStore(seqs, None, target.runtime.device).batch(list(range(len(seqs))))
    losses = {}
    for w in [(1.0, 0.1), (0.0, 1.0), (1.0, 0.0)]:
        torch.manual_seed(0)
        loss, _ = EagleObjective(net, embed, rows, unroll=2, noise=0.0, w_reg=w[0], w_cls=w[1]).loss(batch)
        losses[w] = loss.item()
    assert losses[(1.0, 0.1)] == pytest.approx(losses[(1.0, 0.0)] + 0.1 * losses[(0.0, 1.0)], rel=1e-4)
    assert losses[(0.0, 1.0)] > 0 and losses[(1.0, 0.0)] > 0


def test_eagle_loss_equals_its_formula_step_by_step(target_and_records, tmp_path):
    """The teacher distribution is computed once per batch and subset per unroll step; the loss must equal the
    formula written out per step: w_cls * -sum(softmax(target rows . f_next) * log_softmax(head(g_s))) averaged
    over step s's entries, plus w_reg * smooth-L1(g_s, f_next)."""
    import torch.nn.functional as F

    from specdec.heads.eagle import EagleNet
    from specdec.heads.layer import LayerShape
    from specdec.heads.target import embedding, lm_head_rows
    from specdec.train.batches import SequenceStore
    from specdec.train.eagle import EagleObjective
    from specdec.train.features import extract_features
    target, records = target_and_records
    seqs = extract_features(target, records[:4], tmp_path / "features")
    ids = torch.arange(12)
    torch.manual_seed(0)
    net = EagleNet(LayerShape.of_target(target.runtime.config), 12).to(target.runtime.device)
    embed, rows = embedding(target).float(), lm_head_rows(target, ids).float()
    batch = SequenceStore(seqs, None, target.runtime.device).batch(list(range(len(seqs))))
    batch.prompt_lens.zero_()                 # every entry trained, so later steps really drop the first ones
    obj = EagleObjective(net, embed, rows, unroll=3, noise=0.0, w_reg=0.7, w_cls=0.3)
    loss, metrics = obj.loss(batch)
    nxt, mask, expected = batch.features[:, 1:], obj._mask(batch), 0.0
    for s, g in enumerate(obj._steps(batch, 3, 0.0), start=1):
        m = mask.clone()
        m[:, :s - 1] = False
        teacher = torch.softmax(nxt[m] @ rows.t(), -1)
        logp = torch.log_softmax(net.logits(g[m]), -1)
        expected = expected + 0.3 * -(teacher * logp).sum(-1).mean() + 0.7 * F.smooth_l1_loss(g[m], nxt[m])
        assert metrics[f"acc{s}"] == pytest.approx(float((logp.argmax(-1) == teacher.argmax(-1)).float().mean()))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert {"acc1", "acc2", "acc3"} <= set(metrics)


@pytest.mark.parametrize("kind, extra", [("eagle", {"fuse_layers": (0,)}), ("medusa", {}), ("distilled", {}),
                                         ("eagle3", {"aux_layers": (0, 1, 1)})])
def test_a_run_can_start_from_a_trained_drafter(kind, extra, target_and_records, tmp_path):
    """--init: the new run starts where the initial drafter ended (its first loss is that drafter's, far below a
    fresh start's) and keeps its draft vocabulary; a shape that differs from the initial drafter's is refused."""
    target, records = target_and_records
    train_drafter(kind, target, records, tmp_path / "first", settings(tmp_path, steps=30, **extra), progress=False)
    s = settings(tmp_path, steps=2, **extra)
    s.loop = s.loop.__class__(**{**s.loop.__dict__, "eval_every": 1, "lr": 1e-9})
    fresh = train_drafter(kind, target, records, tmp_path / "fresh", s, progress=False)
    s.init = str(tmp_path / "first")
    warm = train_drafter(kind, target, records, tmp_path / "warm", s, progress=False)
    first = [json.loads(x) for x in (tmp_path / "first" / "run" / "train_log.jsonl").read_text().splitlines()]
    # eagle3's loss is cross-entropy alone, bounded below by the teacher's entropy: a smaller margin
    margin = 0.995 if kind == "eagle3" else 0.9
    assert warm["held_out_metrics"]["train_loss"] < margin * fresh["held_out_metrics"]["train_loss"]
    held = [k for k in first[-1] if k.startswith("held_out_")]
    assert held and all(warm["held_out_metrics"][k] == pytest.approx(first[-1][k], abs=0.02) for k in held)
    _, a = load_drafter(tmp_path / "first", kind)
    _, b = load_drafter(tmp_path / "warm", kind)
    assert torch.equal(a["token_ids"], b["token_ids"])
    key, wrong = {"eagle": ("fuse_layers", ()), "medusa": ("heads", 3), "distilled": ("layers", 2),
                  "eagle3": ("aux_layers", (0, 0, 1))}[kind]
    bad = settings(tmp_path, steps=2, **extra)
    bad.init = str(tmp_path / "first")
    bad.options[key] = wrong
    with pytest.raises(ConfigError, match=f"has {key} .* the run asks for"):
        train_drafter(kind, target, records, tmp_path / "bad", bad, progress=False)
    assert not (tmp_path / "bad").exists()


def test_resume_with_other_settings_is_refused(target_and_records, tmp_path):
    target, records = target_and_records
    train_drafter("medusa", target, records, tmp_path / "m", settings(tmp_path, steps=6), progress=False,
                  stop_after=2)
    with pytest.raises(ConfigError, match="other settings"):
        train_drafter("medusa", target, records, tmp_path / "m", settings(tmp_path, steps=9), progress=False)


def test_drafter_for_another_target_is_refused(target_and_records, tmp_path):
    target, records = target_and_records
    train_drafter("medusa", target, records, tmp_path / "m", settings(tmp_path, steps=2), progress=False)
    other, _ = tiny_target(vocab=16, layers=3, hidden=32, seed=6)
    with pytest.raises(ConfigError, match="trained for target"):
        make_drafter("medusa", other, {"drafter": str(tmp_path / "m")})
    with pytest.raises(ConfigError, match="holds a 'medusa' drafter"):
        make_drafter("eagle", target, {"drafter": str(tmp_path / "m")})
    with pytest.raises(ConfigError, match="does not exist"):
        make_drafter("eagle", target, {"drafter": str(tmp_path / "nowhere")})
    with pytest.raises(ConfigError, match="no eagle drafter ships"):
        make_drafter("eagle", target)


def test_prompt_loading_dedups_and_balances(tmp_path):
    (tmp_path / "gsm8k_train.jsonl").write_text("\n".join(json.dumps({"question": q, "answer": "x"})
                                                          for q in ["How many apples?", "How many apples ?",
                                                                    "What is 2+2 today?"]) + "\n{bad json\n")
    (tmp_path / "wmt22_deen_src.de").write_text("Guten Morgen, Welt.\n\nDas ist gut.\n")
    (tmp_path / "oasst_prompt_lottery_en_250.jsonl").write_text('"Tell me a joke about cats."\n')
    (tmp_path / "unrelated.txt").write_text("ignored in a folder")
    prompts = load_prompts([tmp_path])
    texts = sorted(p.text for p in prompts)
    de = "Translate German to English: "
    assert texts == sorted(["How many apples?", "What is 2+2 today?", de + "Guten Morgen, Welt.", de + "Das ist gut.",
                            "Tell me a joke about cats."])
    assert len(load_prompts([tmp_path], per_group=1)) == 3
    with pytest.raises(ConfigError, match="unknown format"):
        load_prompts([tmp_path / "unrelated.txt"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_prompts([tmp_path / "missing"])


def test_cli_trains_from_data_files_and_reuses_cached_responses(tmp_path, capsys):
    """End to end through `specdec train`: prompts from a data folder, the target's own responses generated with
    transformers, features, training, the saved drafter; a second run with --reuse-responses generates nothing."""
    from specdec.cli import main
    from tests.tiny import write_hf_dir
    model_dir, _ = write_hf_dir(tmp_path / "tiny", scale=3.0)
    data = tmp_path / "data"
    data.mkdir()
    (data / "gsm8k_train.jsonl").write_text("\n".join(json.dumps({"question": f"the quick brown fox {i} times?",
                                                                   "answer": "x"}) for i in range(24)))
    args = ["train", "medusa", "--target", str(model_dir), "--data", str(data), "--out", str(tmp_path / "out"),
            "--work-dir", str(tmp_path / "work"), "--steps", "4", "--eval-every", "2", "--draft-vocab", "64",
            "--heads", "2", "--max-new-tokens", "8", "--eval-prompts", "1", "--token-budget", "256"]
    assert main(args) == 0
    responses = (tmp_path / "work" / "responses.jsonl").read_text().splitlines()
    assert len(responses) == 24 and all(json.loads(r)["response_ids"] for r in responses)
    config, _ = load_drafter(tmp_path / "out", "medusa")
    assert config["training"]["sequences"] + config["training"]["held_out"] == 24
    assert main(args[:-2] + ["--per-group", "30", "--reuse-responses", "--out", str(tmp_path / "out2")]) == 0
    assert len((tmp_path / "work" / "responses.jsonl").read_text().splitlines()) == 24
    assert main(["train", "eagle", "--target", str(model_dir), "--data", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "eagle", "--target", str(model_dir), "--data", str(data), "--fuse-layers", "2,x",
                 "--out", str(tmp_path / "x")]) == 2
    assert "--fuse-layers='2,x' is invalid" in capsys.readouterr().err
    assert main(["train", "eagle", "--target", str(model_dir), "--data", str(tmp_path / "nowhere"),
                 "--fuse-layers", "0,40", "--out", str(tmp_path / "x")]) == 2     # refused before any data work
    assert "fuse layers [0, 40] are invalid" in capsys.readouterr().err
    # --init: shape options left out come from the initial drafter; a conflicting one is refused with its value
    init = args[:-2] + ["--reuse-responses", "--init", str(tmp_path / "out"), "--out", str(tmp_path / "out3")]
    init = [a for i, a in enumerate(init) if a not in ("--heads", "--draft-vocab") and init[i - 1] not in
            ("--heads", "--draft-vocab")]
    assert main(init) == 0
    config3, _ = load_drafter(tmp_path / "out3", "medusa")
    assert config3["num_heads"] == 2 and config3["draft_vocab"] == 64
    assert config3["training"]["settings"]["init"] == str(tmp_path / "out")
    assert main(init[:-1] + [str(tmp_path / "out4"), "--heads", "3"]) == 2
    assert "has heads 2, the run asks for 3" in capsys.readouterr().err
    nowhere = [a if a != str(data) else str(tmp_path / "nowhere") for a in init[:-1]]
    assert main(nowhere + [str(tmp_path / "out4"), "--heads", "3"]) == 2     # refused before any data work
    assert "has heads 2, the run asks for 3" in capsys.readouterr().err
    assert main(init[:-4] + ["--init", "shipped", "--out", str(tmp_path / "out5")]) == 2
    assert "no medusa drafter ships" in capsys.readouterr().err


def test_response_generation_stops_between_batches_and_keeps_the_list_order(tmp_path):
    """stop() ends generation before a batch; prompts are length-sorted only within windows of 8 batches, so a
    stopped run has answered the first window in full and nothing beyond the next."""
    from specdec.models.load import load_model
    from specdec.train.prompts import Prompt
    from specdec.train.responses import generate_responses
    from tests.tiny import write_hf_dir
    model_dir, _ = write_hf_dir(tmp_path / "tiny", scale=3.0)
    target = load_model(str(model_dir), quiet=True)
    prompts = [Prompt("qa", "word " * (1 + (7 * i) % 11) + f"question {i}?", "test") for i in range(40)]
    asked = []
    records = generate_responses(target, prompts, tmp_path / "r.jsonl", max_new_tokens=3, batch_size=2,
                                 stop=lambda: asked.append(1) or len(asked) > 9)
    answered = {r["prompt"] for r in records}
    assert len(answered) == 18
    assert {p.text for p in prompts[:16]} <= answered                 # the first window (8 batches of 2), whole
    assert len(answered - {p.text for p in prompts[:32]}) == 0        # the rest from the second window only
    again = generate_responses(target, prompts, tmp_path / "r.jsonl", max_new_tokens=3, batch_size=2)
    assert len(again) == 40 and [r["prompt"] for r in again] == [p.text for p in prompts]
