"""Summary arithmetic on hand-made records (no timing), and the Markdown / plot renderers."""

import pytest

from specdec.bench.records import fill_identity
from specdec.bench.report_md import render_markdown
from specdec.bench.summary import acceptance_per_position, summarize


def rec(qid, cat, method, new, seconds, turn=1, ids=None, forwards=None, emitted=None, acc=(), reached=()):
    return {"question_id": qid, "category": cat, "turn": turn, "method": method, "new_tokens": new,
            "seconds": seconds, "target_forwards": forwards, "emitted_tokens": emitted,
            "accepted_per_depth": list(acc), "reached_per_depth": list(reached),
            "token_ids": ids if ids is not None else list(range(new)), "identical_to_vanilla": None}


RECORDS = [
    # question 1 (qa): vanilla 10 tok / 2 s = 5 tok/s; pld 10 tok / 1 s; hf_vanilla 10 tok / 4 s
    rec(1, "qa", "vanilla", 10, 2.0, forwards=10, emitted=10),
    rec(1, "qa", "pld", 10, 1.0, forwards=4, emitted=10, acc=[3, 2, 1], reached=[4, 3, 2]),
    rec(1, "qa", "hf_vanilla", 10, 4.0),
    # question 2 (multi_turn), two turns; pld's turn-2 output differs from vanilla's
    rec(2, "multi_turn", "vanilla", 20, 4.0, forwards=20, emitted=20),
    rec(2, "multi_turn", "pld", 20, 2.0, forwards=10, emitted=21, acc=[5, 1], reached=[8, 2]),
    rec(2, "multi_turn", "hf_vanilla", 20, 5.0),
    rec(2, "multi_turn", "vanilla", 30, 3.0, turn=2, forwards=30, emitted=30),
    rec(2, "multi_turn", "pld", 30, 5.0, turn=2, ids=[7] * 30, forwards=20, emitted=30, acc=[10], reached=[20]),
    # hf_vanilla has no turn-2 record: speedup vs hf_vanilla uses the shared units only
]


def test_speedups_tokens_per_s_and_accepted_length_by_hand():
    s = summarize(RECORDS, ["vanilla", "pld", "hf_vanilla"])
    van, pld, hf = (s["methods"][m] for m in ["vanilla", "pld", "hf_vanilla"])
    assert s["categories"] == ["qa", "multi_turn"]
    assert van["overall"]["tokens_per_s"] == pytest.approx(60 / 9)
    assert pld["overall"]["tokens_per_s"] == pytest.approx(60 / 8)
    assert pld["overall"]["speedup_vs_vanilla"] == pytest.approx((60 / 8) / (60 / 9))
    assert pld["per_category"]["qa"]["speedup_vs_vanilla"] == pytest.approx(2.0)
    assert pld["per_category"]["multi_turn"]["speedup_vs_vanilla"] == pytest.approx((50 / 7) / (50 / 7))
    # vs hf_vanilla: only (1, 1) and (2, 1) are shared -> pld 30 tok / 3 s, hf 30 tok / 9 s
    assert pld["overall"]["speedup_vs_hf_vanilla"] == pytest.approx(3.0)
    assert van["overall"]["speedup_vs_hf_vanilla"] == pytest.approx((30 / 6) / (30 / 9))
    assert hf["overall"]["speedup_vs_vanilla"] == pytest.approx((30 / 9) / (30 / 6))
    assert van["overall"]["mean_accepted_length"] == pytest.approx(1.0)
    assert pld["overall"]["mean_accepted_length"] == pytest.approx(61 / 34)      # total emitted / forwards
    assert hf["overall"]["mean_accepted_length"] is None
    assert pld["overall"]["acceptance_per_position"] == pytest.approx([18 / 32, 3 / 5, 1 / 2])
    assert pld["overall"]["identical_share"] == pytest.approx(2 / 3)
    assert van["overall"]["identical_share"] == 1.0 and hf["overall"]["identical_share"] == 1.0


def test_missing_reference_gives_none_not_a_crash():
    s = summarize([r for r in RECORDS if r["method"] == "pld"], ["pld", "vanilla"])
    assert s["methods"]["pld"]["overall"]["speedup_vs_vanilla"] is None
    assert s["methods"]["vanilla"]["overall"]["tokens_per_s"] is None
    assert acceptance_per_position([]) == []


def test_fill_identity_uses_vanilla_of_the_same_question_and_turn():
    filled = fill_identity(RECORDS)
    assert [r["identical_to_vanilla"] for r in filled if r["method"] == "pld"] == [True, True, False]
    assert all(r["identical_to_vanilla"] is None for r in RECORDS)             # inputs untouched


def test_markdown_table_has_methods_categories_and_tau_note():
    summary = {"model": "tiny", "machine": {"cpu": "Test CPU", "gpu": None, "cores": 2, "torch_threads": 2,
                                            "torch": "2", "transformers": "5", "dtype": "float32", "device": "cpu",
                                            "python": "3", "date": "today", "command": "specdec bench --x"},
               "notes": ["hf_assisted skipped"], "roofline": {"bandwidth_gb_per_s": 10.0,
               "weight_bytes_per_token": 5e8, "bound_tokens_per_s": 20.0, "vanilla_tokens_per_s": 5.0,
               "vanilla_fraction_of_bound": 0.25}, **summarize(RECORDS, ["vanilla", "pld", "hf_vanilla"])}
    md = render_markdown(summary)
    assert "| method | qa | multi_turn | overall speedup |" in md
    assert "| pld | 2.00x | 1.00x | 1.12x | 3.00x | 7.5 | 1.79 | 67% |" in md
    assert "vanilla = 1.00" in md and "Test CPU, 2 cores" in md and "`specdec bench --x`" in md
    assert "25% of the bound" in md and "- hf_assisted skipped" in md
