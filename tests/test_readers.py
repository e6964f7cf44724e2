"""Tests of the upstream-format readers: real files from ../shared/data and malformed fixtures."""

from __future__ import annotations

import collections
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from longctx.data.errors import DataError
from longctx.data.example import Example
from longctx.data.readers import READERS, read_examples

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

HOTPOT = DATA / "hotpotqa" / "hotpot_dev_distractor_400.json"
NQ = DATA / "nq_open" / "nq-open-oracle.jsonl.gz"
LONGBENCH = DATA / "longbench_v2"
LOONG = DATA / "loong_financial_en"
LEVAL = DATA / "leval"


def _real(fmt: str, path: Path, **options: Any) -> list[Example]:
    """Read a real data file, or skip when ../shared/data is absent."""
    if not path.exists():
        pytest.skip(f"../shared/data not present: {path}")
    return read_examples(fmt, path, **options)


def _write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _check(err: pytest.ExceptionInfo[DataError], path: Path, location: str, field: str) -> None:
    """The error message names the file, the location and the field."""
    message = str(err.value)
    assert path.name in message, message
    assert location in message, message
    assert field in message, message
    assert err.value.location == location
    assert err.value.field == field


# ----------------------------------------------------------------------------- registry


def test_all_formats_registered():
    assert {"hotpotqa", "nq", "kilt", "longbench_v2", "loong", "leval"} <= set(READERS)


def test_unknown_format_lists_known_formats(tmp_path):
    with pytest.raises(KeyError) as err:
        read_examples("nope", tmp_path / "x.jsonl")
    for name in ("hotpotqa", "nq", "kilt", "longbench_v2", "loong", "leval"):
        assert name in str(err.value)


@pytest.mark.parametrize("fmt", ["hotpotqa", "nq", "kilt", "longbench_v2", "loong", "leval"])
def test_missing_path_names_it(tmp_path, fmt):
    missing = tmp_path / "no_such_file.jsonl"
    with pytest.raises(FileNotFoundError, match="no_such_file.jsonl"):
        read_examples(fmt, missing)


@pytest.mark.parametrize("fmt", ["hotpotqa", "nq", "kilt", "longbench_v2", "loong", "leval"])
def test_unknown_option_rejected(tmp_path, fmt):
    with pytest.raises(TypeError, match="bogus"):
        read_examples(fmt, tmp_path / "x.jsonl", bogus=1)


# ----------------------------------------------------------------------------- hotpotqa


@pytest.fixture(scope="module")
def hotpot() -> list[Example]:
    return _real("hotpotqa", HOTPOT)


def test_hotpotqa_real(hotpot):
    assert len(hotpot) == 400
    assert all(e.task == "hotpotqa" for e in hotpot)
    assert all(len(e.gold_documents) == 2 for e in hotpot)
    assert collections.Counter(len(e.documents) for e in hotpot) == {10: 399, 2: 1}
    assert collections.Counter(e.meta["type"] for e in hotpot) == {"bridge": 344,
                                                                  "comparison": 56}
    first = hotpot[0]
    assert first.id == "5a7d54165542995f4f402256"
    assert first.answers == ["Yellowcraig"]
    assert {d.title for d in first.gold_documents} == {"Yellowcraigs", "Dirleton Castle"}
    assert first.meta["level"] == "hard"
    assert first.meta["supporting_facts"][0] == ["Yellowcraigs", 0]
    borders = next(d for d in first.documents if d.id == "Scottish Borders")
    # Sentences carry their own leading space: joined with "", exactly one space between them.
    assert "council areas of Scotland. It borders the City of Edinburgh" in borders.text
    assert "  " not in borders.text


def _hotpot_record(**changes: Any) -> dict[str, Any]:
    record = {
        "_id": "q1", "question": "Who?", "answer": "A",
        "supporting_facts": [["T1", 0], ["T2", 1]],
        "context": [["T1", ["First.", " Second."]], ["T2", ["x", " y"]], ["T3", ["z"]]],
        "type": "bridge", "level": "hard",
    }
    record.update(changes)
    return record


def test_hotpotqa_jsonl_and_join(tmp_path):
    path = _write_jsonl(tmp_path / "h.jsonl", [_hotpot_record()])
    [ex] = read_examples("hotpotqa", path)
    assert [d.text for d in ex.documents] == ["First. Second.", "x y", "z"]
    assert [d.is_gold for d in ex.documents] == [True, True, False]


def test_hotpotqa_truncated_json(tmp_path):
    path = tmp_path / "hotpot.json"
    text = json.dumps([_hotpot_record(), _hotpot_record(_id="q2")], indent=1)
    path.write_text(text[: len(text) // 2], encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_examples("hotpotqa", path)
    assert path.name in str(err.value) and "line " in str(err.value)
    assert "invalid JSON" in str(err.value)


def test_hotpotqa_missing_field(tmp_path):
    bad = _hotpot_record()
    del bad["answer"]
    path = tmp_path / "hotpot.json"
    path.write_text(json.dumps([_hotpot_record(), bad]), encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_examples("hotpotqa", path)
    _check(err, path, "index 1", "answer")


def test_hotpotqa_wrong_nested_types(tmp_path):
    path = tmp_path / "hotpot.json"
    path.write_text(json.dumps([_hotpot_record(context=[["T1", ["a"]], ["T2", [7]]])]))
    with pytest.raises(DataError) as err:
        read_examples("hotpotqa", path)
    _check(err, path, "index 0", "context[1][1][0]")
    path.write_text(json.dumps([_hotpot_record(supporting_facts=[["T1", "0"]])]))
    with pytest.raises(DataError) as err:
        read_examples("hotpotqa", path)
    _check(err, path, "index 0", "supporting_facts[0][1]")


def test_hotpotqa_supporting_fact_not_in_context(tmp_path):
    path = tmp_path / "hotpot.json"
    path.write_text(json.dumps([_hotpot_record(supporting_facts=[["Nowhere", 0]])]))
    with pytest.raises(DataError) as err:
        read_examples("hotpotqa", path)
    _check(err, path, "index 0", "supporting_facts[0][0]")


# ----------------------------------------------------------------------------- nq


@pytest.fixture(scope="module")
def nq() -> list[Example]:
    return _real("nq", NQ)


def test_nq_real(nq):
    assert len(nq) == 2655
    assert all(len(e.documents) == 1 and len(e.gold_documents) == 1 for e in nq)
    assert len({e.id for e in nq}) == 2655
    first = nq[0]
    assert first.id == "nq-1"
    assert first.question == "who got the first nobel prize in physics"
    assert first.answers == ["Wilhelm Conrad Röntgen"]
    doc = first.documents[0]
    assert (doc.id, doc.title) == ("ctx0", "List of Nobel laureates in Physics")
    assert "Wilhelm Conrad Röntgen" in doc.text
    assert first.meta["hasanswer"] == [True]
    assert first.meta["nq_annotated_gold"]["short_answers"] == ["Wilhelm Conrad Röntgen"]


def _nq_record(**changes: Any) -> dict[str, Any]:
    record = {"question": "q?", "answers": ["a"],
              "ctxs": [{"title": "T0", "text": "x", "hasanswer": False, "isgold": False},
                       {"title": "T1", "text": "a", "hasanswer": True, "isgold": True}]}
    record.update(changes)
    return record


def test_nq_gz_ids_and_gold(tmp_path):
    path = tmp_path / "nq.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps(_nq_record()) + "\n\n" + json.dumps(_nq_record(id="custom")) + "\n")
    first, second = read_examples("nq", path)
    assert (first.id, second.id) == ("nq-1", "custom")
    assert [d.id for d in first.documents] == ["ctx0", "ctx1"]
    assert [d.is_gold for d in first.documents] == [False, True]
    assert first.meta["hasanswer"] == [False, True]
    assert "nq_annotated_gold" not in first.meta


def test_nq_answers_as_string(tmp_path):
    path = _write_jsonl(tmp_path / "nq.jsonl", [_nq_record(), _nq_record(answers="a")])
    with pytest.raises(DataError) as err:
        read_examples("nq", path)
    _check(err, path, "line 2", "answers")
    assert "expected a list, got str" in str(err.value)


def test_nq_ctx_text_int(tmp_path):
    record = _nq_record()
    record["ctxs"][1]["text"] = 5
    path = _write_jsonl(tmp_path / "nq.jsonl", [record])
    with pytest.raises(DataError) as err:
        read_examples("nq", path)
    _check(err, path, "line 1", "ctxs[1].text")


def test_nq_bad_json_line(tmp_path):
    path = tmp_path / "nq.jsonl"
    path.write_text(json.dumps(_nq_record()) + "\n" + json.dumps(_nq_record()) + "\n{oops\n")
    with pytest.raises(DataError) as err:
        read_examples("nq", path)
    assert path.name in str(err.value) and "line 3" in str(err.value)


# ----------------------------------------------------------------------------- kilt


def _kilt_records() -> list[dict[str, Any]]:
    return [
        {"id": "q1", "question": "Where?", "answers": ["Paris", "paris"],
         "ctxs": [{"id": "p9", "title": "France", "text": "Paris is ...", "is_gold": True,
                   "has_answer": True},
                  {"id": "p3", "title": "Spain", "text": "Madrid ...", "has_answer": False}]},
        {"question": "Who?", "answer": "Bob",
         "ctxs": [{"text": "no title"}, {"title": "B", "text": "Bob", "isgold": True}]},
    ]


def test_kilt_fixture(tmp_path):
    path = _write_jsonl(tmp_path / "kilt.jsonl", _kilt_records())
    first, second = read_examples("kilt", path)
    assert (first.id, first.task, first.answers) == ("q1", "kilt", ["Paris", "paris"])
    assert [(d.id, d.title, d.is_gold) for d in first.documents] == [
        ("p9", "France", True), ("p3", "Spain", False)]
    assert first.meta["has_answer"] == [True, False]
    assert (second.id, second.answers) == ("kilt-2", ["Bob"])
    assert [(d.id, d.title, d.is_gold) for d in second.documents] == [
        ("ctx0", "", False), ("ctx1", "B", True)]
    assert second.meta == {}
    [renamed, _] = read_examples("kilt", path, task="nq_kilt")
    assert renamed.task == "nq_kilt"
    assert read_examples("kilt", path, task="popqa")[1].id == "popqa-2"


def test_kilt_answers_as_string(tmp_path):
    records = _kilt_records()
    records[0]["answers"] = "Paris"
    path = _write_jsonl(tmp_path / "kilt.jsonl", records)
    with pytest.raises(DataError) as err:
        read_examples("kilt", path)
    _check(err, path, "line 1", "answers")


def test_kilt_ctx_text_int_and_bad_flag(tmp_path):
    records = _kilt_records()
    records[1]["ctxs"][1]["text"] = 3
    path = _write_jsonl(tmp_path / "kilt.jsonl", records)
    with pytest.raises(DataError) as err:
        read_examples("kilt", path)
    _check(err, path, "line 2", "ctxs[1].text")
    records = _kilt_records()
    records[0]["ctxs"][1]["is_gold"] = "yes"
    path = _write_jsonl(tmp_path / "kilt.jsonl", records)
    with pytest.raises(DataError) as err:
        read_examples("kilt", path)
    _check(err, path, "line 1", "ctxs[1].is_gold")


def test_kilt_missing_question_and_duplicate_ids(tmp_path):
    records = _kilt_records()
    del records[1]["question"]
    path = _write_jsonl(tmp_path / "kilt.jsonl", records)
    with pytest.raises(DataError) as err:
        read_examples("kilt", path)
    _check(err, path, "line 2", "question")
    records = _kilt_records()
    records[0]["ctxs"][1]["id"] = "p9"
    path = _write_jsonl(tmp_path / "kilt.jsonl", records)
    with pytest.raises(DataError) as err:
        read_examples("kilt", path)
    _check(err, path, "line 1", "ctxs[1].id")


# ----------------------------------------------------------------------------- longbench_v2


@pytest.fixture(scope="module")
def longbench() -> list[Example]:
    return _real("longbench_v2", LONGBENCH)


def test_longbench_v2_real(longbench):
    # The folder's README says 66; its two files hold 29 + 39 = 68 records.
    assert len(longbench) == 68
    assert len({e.id for e in longbench}) == 68
    assert all(e.answers[0] in "ABCD" and len(e.answers) == 1 for e in longbench)
    assert all(len(e.documents) == 1 and not e.documents[0].is_gold for e in longbench)
    lengths = [len(e.documents[0].text) for e in longbench]
    assert 48_000 < min(lengths) and max(lengths) < 216_000
    domains = collections.Counter(e.meta["domain"] for e in longbench)
    assert domains == {"Multi-Document QA": 29, "Single-Document QA": 39}
    first = longbench[0]  # multi_document_qa_short_part1.json sorts first
    assert (first.id, first.answers, first.task) == ("66f599ef821e116aacb34099", ["B"],
                                                     "longbench_v2")
    assert first.meta["sub_domain"] == "Academic"
    assert first.meta["difficulty"] == "hard" and first.meta["length"] == "short"
    assert first.meta["options"]["C"].startswith("ETHOS requires the model")
    assert first.documents[0].text.startswith("CrowS-Pairs")


def test_longbench_v2_single_file():
    path = LONGBENCH / "single_document_qa_short_part1.json"
    examples = _real("longbench_v2", path)
    assert len(examples) == 39
    assert examples[0].id == "66f36490821e116aacb2cc22" and examples[0].answers == ["D"]


def _lb_record(**changes: Any) -> dict[str, Any]:
    record = {"_id": "x", "domain": "d", "sub_domain": "s", "difficulty": "easy",
              "length": "short", "question": "q", "choice_A": "a", "choice_B": "b",
              "choice_C": "c", "choice_D": "d", "answer": "A", "context": "ctx"}
    record.update(changes)
    return record


def test_longbench_v2_malformed(tmp_path):
    path = tmp_path / "lb.json"
    path.write_text(json.dumps([_lb_record(), _lb_record(answer="E")]))
    with pytest.raises(DataError) as err:
        read_examples("longbench_v2", path)
    _check(err, path, "index 1", "answer")
    bad = _lb_record()
    del bad["choice_C"]
    path.write_text(json.dumps([bad]))
    with pytest.raises(DataError) as err:
        read_examples("longbench_v2", path)
    _check(err, path, "index 0", "choice_C")
    path.write_text(json.dumps([_lb_record(context=["a", "b"])]))
    with pytest.raises(DataError) as err:
        read_examples("longbench_v2", path)
    _check(err, path, "index 0", "context")


def test_longbench_v2_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        read_examples("longbench_v2", tmp_path)


# ----------------------------------------------------------------------------- loong


@pytest.fixture(scope="module")
def loong() -> list[Example]:
    return _real("loong", LOONG)


def test_loong_real(loong):
    assert len(loong) == 60
    assert all(e.task == "loong" and e.documents for e in loong)
    assert all(d.text.strip() for e in loong for d in e.documents)
    assert collections.Counter(e.meta["level"] for e in loong) == {1: 6, 2: 18, 3: 23, 4: 13}
    files = {f for e in loong for f in e.meta["doc_files"]}
    assert len(files) == 48  # of the folder's 67 reports
    first = loong[0]
    assert first.id == "12588c71-c932-4fb0-8eb6-24c5a3152e3a"
    assert [d.id for d in first.documents] == ["2023-avni123123form10k", "2024-avni123123form10k"]
    assert first.answers == [first.meta["answer"]]
    assert first.meta["prompt_template"] == "{docs}\n\n{instruction}\n\n{question}"
    assert first.meta["shuffle_doc"] is True
    second = loong[1]  # level 2: names are companies, files are "2024-<name>-j.txt"
    assert second.documents[0].title == "CPI AEROSTRUCTURES INC"
    assert second.meta["doc_files"][0] == "2024-CPI AEROSTRUCTURES INC-j.txt"
    dict_answers = [e for e in loong if isinstance(e.meta["answer"], dict)]
    assert len(dict_answers) == 22
    assert all(json.loads(e.answers[0]) == e.meta["answer"] for e in dict_answers)
    # texts are read once and shared between questions
    texts = {}
    for e in loong:
        for d in e.documents:
            assert texts.setdefault(d.id, d.text) is d.text


def test_loong_questions_file_path():
    examples = _real("loong", LOONG / "questions_shared_60.jsonl")
    assert len(examples) == 60


def _loong_fixture(tmp_path: Path, docs: list[str]) -> Path:
    (tmp_path / "doc_test").mkdir()
    (tmp_path / "doc_test" / "2024-Acme Corp-j.txt").write_text("Acme report")
    (tmp_path / "doc_test" / "2023-form10-k.txt").write_text("older report")
    record = {"id": "u1", "level": 3, "set": 1, "length": 10, "type": "financial",
              "language": "en", "question": "q", "instruction": "i",
              "prompt_template": "{docs}{instruction}{question}", "doc": docs,
              "answer": {"b": ["Acme Corp"], "a": []}, "shuffle_doc": False}
    return _write_jsonl(tmp_path / "questions.jsonl", [record])


def test_loong_fixture(tmp_path):
    _loong_fixture(tmp_path, ["Acme Corp", "2023-form10-k"])
    [ex] = read_examples("loong", tmp_path)
    assert [(d.id, d.text) for d in ex.documents] == [("Acme Corp", "Acme report"),
                                                     ("2023-form10-k", "older report")]
    assert ex.answers == ['{"a": [], "b": ["Acme Corp"]}']
    assert ex.meta["answer"] == {"b": ["Acme Corp"], "a": []}
    moved = tmp_path / "elsewhere"
    (tmp_path / "doc_test").rename(moved)
    [again] = read_examples("loong", tmp_path / "questions.jsonl", docs_dir=moved)
    assert again.documents[0].text == "Acme report"


def test_loong_missing_document(tmp_path):
    path = _loong_fixture(tmp_path, ["Acme Corp", "Nobody Inc"])
    with pytest.raises(DataError) as err:
        read_examples("loong", tmp_path)
    _check(err, path, "line 1", "doc[1]")
    assert "Nobody Inc" in str(err.value)


def test_loong_wrong_type(tmp_path):
    path = _loong_fixture(tmp_path, ["Acme Corp", 4])
    with pytest.raises(DataError) as err:
        read_examples("loong", path)
    _check(err, path, "line 1", "doc[1]")


# ----------------------------------------------------------------------------- leval


@pytest.fixture(scope="module")
def leval() -> list[Example]:
    return _real("leval", LEVAL)


def test_leval_real(leval):
    counts = collections.Counter(e.task for e in leval)
    assert counts == {"leval_coursera": 172, "leval_legal_contract_qa": 154,
                      "leval_quality": 202, "leval_scientific_qa": 184,
                      "leval_topic_retrieval_longchat": 150, "leval_tpo": 269}
    assert len({e.id for e in leval}) == len(leval) == 1131
    first = leval[0]
    assert first.id == "coursera-1-0"
    assert first.question.startswith("Question 1. What is the main goal of data science?")
    assert "\nC. Answer questions using data" in first.question
    assert first.answers == ["C"]
    assert first.meta == {"evaluation": "exam", "source": "coursera_a"}
    assert first.documents[0].text.startswith("What is Data Science?")
    assert leval[1].documents[0].text is first.documents[0].text
    quality = next(e for e in leval if e.task == "leval_quality")
    assert quality.answers[0].startswith("(B) Their subconscious")


def test_leval_single_file():
    examples = _real("leval", LEVAL / "tpo.jsonl")
    assert len(examples) == 269 and examples[0].answers == ["A"]


def _leval_record(**changes: Any) -> dict[str, Any]:
    record = {"input": "doc", "instructions": ["q1", "q2"], "outputs": ["a1", "a2"],
              "source": "s", "evaluation": "f1"}
    record.update(changes)
    return record


def test_leval_mismatch_and_types(tmp_path):
    path = _write_jsonl(tmp_path / "task.jsonl",
                        [_leval_record(), _leval_record(outputs=["only one"])])
    with pytest.raises(DataError) as err:
        read_examples("leval", path)
    _check(err, path, "line 2", "outputs")
    path = _write_jsonl(tmp_path / "task.jsonl", [_leval_record(instructions=["q1", 2])])
    with pytest.raises(DataError) as err:
        read_examples("leval", path)
    _check(err, path, "line 1", "instructions[1]")
    path = _write_jsonl(tmp_path / "task.jsonl", [_leval_record(input=None)])
    with pytest.raises(DataError) as err:
        read_examples("leval", path)
    _check(err, path, "line 1", "input")


def test_leval_fixture_folder(tmp_path):
    _write_jsonl(tmp_path / "b_task.jsonl", [_leval_record()])
    _write_jsonl(tmp_path / "a_task.jsonl", [_leval_record(), _leval_record()])
    examples = read_examples("leval", tmp_path)
    assert [e.id for e in examples] == ["a_task-1-0", "a_task-1-1", "a_task-2-0", "a_task-2-1",
                                        "b_task-1-0", "b_task-1-1"]
    assert examples[-1].task == "leval_b_task" and examples[1].answers == ["a2"]
