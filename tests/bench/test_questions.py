"""Question files: Spec-Bench category groups, deterministic selection, one clear error per bad input."""

import json

import pytest

from specdec.bench.questions import (GROUPS, MT_BENCH_CATEGORIES, MULTI_TURN, BenchDataError, default_data_path,
                                     group_of, load_questions, select)
from tests.bench.helpers import write_questions


def test_mt_bench_categories_form_multi_turn():
    for raw in MT_BENCH_CATEGORIES:
        assert group_of(raw) == MULTI_TURN
    for other in ["translation", "summarization", "qa", "math_reasoning", "rag", "custom"]:
        assert group_of(other) == other


def test_shipped_file_has_spec_bench_groups():
    questions = load_questions(default_data_path())
    assert len(questions) == 480
    assert sorted({q.raw_category for q in questions}) == sorted([*MT_BENCH_CATEGORIES, *GROUPS[1:]])
    counts = {g: sum(q.category == g for q in questions) for g in GROUPS}
    assert counts == dict.fromkeys(GROUPS, 80)
    assert all(len(q.turns) == 2 for q in questions if q.category == MULTI_TURN)


def test_select_first_n_per_group_in_spec_bench_order():
    questions = load_questions(default_data_path())
    picked = select(questions, per_category=2)
    assert [q.category for q in picked] == [g for g in GROUPS for _ in range(2)]
    assert [q.question_id for q in picked[:2]] == [81, 82]               # file order within a group
    only = select(questions, ["qa", "multi_turn"], 1)
    assert [q.category for q in only] == ["qa", "multi_turn"]
    assert select(questions, ["rag"], None) == [q for q in questions if q.category == "rag"]


@pytest.mark.parametrize("line, words", [
    ("not json", "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    (json.dumps({"question_id": 1, "category": "qa"}), "malformed"),
    (json.dumps({"question_id": 1, "category": "qa", "turns": []}), "malformed"),
    (json.dumps({"question_id": 1, "category": "qa", "turns": ["a", "b", "c"]}), "malformed"),
    (json.dumps({"question_id": 1, "category": "qa", "turns": [3]}), "malformed"),
])
def test_malformed_lines_name_file_and_line(tmp_path, line, words):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"question_id": 0, "category": "qa", "turns": ["ok"]}) + "\n" + line + "\n")
    with pytest.raises(BenchDataError, match=words) as e:
        load_questions(path)
    assert f"{path}:2" in str(e.value)


def test_bad_path_empty_file_duplicate_ids_unknown_category(tmp_path):
    with pytest.raises(BenchDataError, match="does not exist"):
        load_questions(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(BenchDataError, match="no questions"):
        load_questions(tmp_path / "empty.jsonl")
    row = {"question_id": 1, "category": "qa", "turns": ["a"]}
    with pytest.raises(BenchDataError, match="appears twice"):
        load_questions(write_questions(tmp_path / "dup.jsonl", [row, row]))
    questions = load_questions(write_questions(tmp_path / "q.jsonl"))
    accepted = "accepted: multi_turn, summarization, qa"           # Spec-Bench group order, not file order
    with pytest.raises(BenchDataError, match=f"'poetry' is not in the question file; {accepted}"):
        select(questions, ["poetry"])
    with pytest.raises(BenchDataError, match="per_category=0"):
        select(questions, None, 0)
