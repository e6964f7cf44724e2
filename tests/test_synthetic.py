"""Tests for the synthetic fictional-entity QA generator and its jsonl reader."""

from __future__ import annotations

import json
import statistics
from difflib import SequenceMatcher

import pytest

from longctx.data.errors import DataError
from longctx.data.example import Example
from longctx.data.readers.base import read_examples
from longctx.data.synthetic import generate_synthetic, read_synthetic, write_jsonl


@pytest.fixture(scope="module")
def examples() -> list[Example]:
    return generate_synthetic(n=40, seed=7, n_distractors=30)


def test_deterministic() -> None:
    a = [e.to_dict() for e in generate_synthetic(n=12, seed=3, n_distractors=10)]
    b = [e.to_dict() for e in generate_synthetic(n=12, seed=3, n_distractors=10)]
    assert a == b


def test_different_seeds_differ() -> None:
    a = generate_synthetic(n=12, seed=0, n_distractors=10)
    b = generate_synthetic(n=12, seed=1, n_distractors=10)
    assert [e.question for e in a] != [e.question for e in b]
    assert [e.id for e in a][0] == "synth-0-0" and b[0].id == "synth-1-0"


def test_fields(examples: list[Example]) -> None:
    assert len({e.id for e in examples}) == len(examples)
    assert len({e.question for e in examples}) == len(examples)
    for i, ex in enumerate(examples):
        assert ex.id == f"synth-7-{i}"
        assert ex.task == "synthetic"
        assert ex.answers and all(1 <= len(a.split()) <= 3 for a in ex.answers)
        assert [d.id for d in ex.documents] == [f"d{k}" for k in range(len(ex.documents))]
        assert all(d.title and d.text for d in ex.documents)


def test_answer_in_gold_document(examples: list[Example]) -> None:
    for ex in examples:
        assert any(ex.answers[0] in d.text for d in ex.gold_documents), ex.question


def test_gold_counts_and_bridge(examples: list[Example]) -> None:
    for ex in examples:
        golds = ex.gold_documents
        assert len(golds) == ex.meta["hops"]
        assert ex.meta["subject"] in ex.question
        assert ex.meta["subject"] in {d.title for d in golds}
        if ex.meta["hops"] == 2:
            bridge = ex.meta["bridge"]
            assert bridge not in ex.question
            assert all(bridge in d.text for d in golds)


def test_distractors_never_name_subject_or_bridge(examples: list[Example]) -> None:
    for ex in examples:
        names = [ex.meta["subject"]] + ([ex.meta["bridge"]] if ex.meta["hops"] == 2 else [])
        for d in ex.distractors:
            assert not any(n in d.text or n == d.title for n in names), (ex.question, d.title)


def test_distractors_include_look_alikes(examples: list[Example]) -> None:
    for ex in examples:
        subject = ex.meta["subject"]
        assert any(d.title.split()[0] == subject.split()[0]
                   or SequenceMatcher(None, subject, d.title).ratio() >= 0.75
                   for d in ex.distractors), ex.question


def test_half_one_hop_half_two_hop(examples: list[Example]) -> None:
    hops = [ex.meta["hops"] for ex in examples]
    assert hops.count(1) == hops.count(2) == len(examples) // 2
    assert len({ex.meta["question_type"] for ex in examples}) >= 6


@pytest.mark.parametrize("k", [0, 5, 40, 60])
def test_n_distractors_respected(k: int) -> None:
    for ex in generate_synthetic(n=6, seed=2, n_distractors=k):
        assert len(ex.distractors) == k
        assert len(ex.documents) == k + ex.meta["hops"]
        assert len({d.title for d in ex.documents}) == len(ex.documents)


def test_document_length(examples: list[Example]) -> None:
    words = [len(d.text.split()) for ex in examples for d in ex.documents]
    assert 40 <= statistics.mean(words) <= 150


def test_jsonl_round_trip(tmp_path, examples: list[Example]) -> None:
    path = tmp_path / "sub" / "synth.jsonl"
    write_jsonl(examples, path)
    assert read_synthetic(path) == examples
    assert read_examples("synthetic", path, limit=3) == examples[:3]


def test_malformed_line_names_file_line_and_field(tmp_path, examples: list[Example]) -> None:
    path = tmp_path / "bad.jsonl"
    records = [ex.to_dict() for ex in examples[:3]]
    del records[1]["question"]
    records[2]["documents"][4]["is_gold"] = "yes"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_synthetic(path)
    assert err.value.location == "line 2" and err.value.field == "question"
    assert "bad.jsonl" in str(err.value) and "line 2" in str(err.value)

    path.write_text(json.dumps(records[2]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_synthetic(path)
    assert err.value.location == "line 1" and err.value.field == "documents[4].is_gold"


def test_invalid_json_line(tmp_path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"broken\.jsonl, line 1"):
        read_synthetic(path)
