"""Out-of-domain benchmark tasks: InfiniteBench, LongBench v2, Loong and L-Eval."""

from __future__ import annotations

import json

import pytest

from longctx.data.errors import DataError
from longctx.data.readers import read_examples
from longctx.eval.judge import Judge, JudgeError
from longctx.eval.tasks import TASKS, get_task
from tests.conftest import shared_path

OOD_TASKS = [
    "infbench_mc",
    "infbench_qa",
    "infbench_sum",
    "longbench_v2",
    "loong_fin",
    "leval_coursera",
    "leval_quality",
    "leval_tpo",
    "leval_legal_contract_qa",
    "leval_scientific_qa",
    "leval_topic_retrieval_longchat",
]


def test_registry_holds_every_ood_task():
    assert set(OOD_TASKS) <= set(TASKS)
    for name in OOD_TASKS:
        task = TASKS[name]
        assert task.domain == "out" and task.context == "document"
        assert task.metric and task.max_new_tokens > 0
    assert getattr(TASKS["loong_fin"], "needs_judge", False) is True
    assert not any(getattr(TASKS[n], "needs_judge", False) for n in OOD_TASKS if n != "loong_fin")


def _question_after_context(task, tokenizer, example, question: str):
    """Render with the real document context and check the question follows it."""
    context = task.document_context(example, "full").text
    assert context
    if task.name != "loong_fin":
        assert not context.startswith("[DOC")  # plain document text, no passage tags
    prompt = task.prompt(tokenizer, example, context)
    assert prompt.context == context
    assert question in prompt.after and question not in prompt.before
    assert prompt.text.index(context) < prompt.text.rindex(question)
    none = task.prompt(tokenizer, example, "")
    assert none.context == "" and question in none.before
    return prompt


# ----------------------------------------------------------------------------- InfiniteBench


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def infbench_dir(tmp_path):
    book = "Once upon a time Walking Georgie met the dragon Elmo near the river. " * 20
    _write_jsonl(
        tmp_path / "longbook_choice_eng.jsonl",
        [
            {
                "id": 0,
                "context": book,
                "input": "Whom did Walking Georgie meet?",
                "answer": ["The dragon Elmo"],
                "options": ["A wizard", "The dragon Elmo", "A knight", "Nobody"],
            },
            {
                "id": 1,
                "context": book,
                "input": "Where did they meet?",
                "answer": ["D"],
                "options": ["In a castle", "In a cave", "On a ship", "Near the river"],
            },
        ],
    )
    _write_jsonl(
        tmp_path / "longbook_qa_eng.jsonl",
        [{"id": 0, "context": book, "input": "Whom did Georgie meet?", "answer": ["Elmo"]}],
    )
    _write_jsonl(
        tmp_path / "longbook_sum_eng.jsonl",
        [{"id": 0, "context": book, "input": "", "answer": ["the cat was on the mat"]}],
    )
    return tmp_path


def test_infbench_reader_and_mc(infbench_dir, tokenizer):
    task = get_task("infbench_mc")
    examples = task.load(infbench_dir)  # the folder: the task picks its own file
    assert [e.id for e in examples] == ["longbook_choice_eng-0", "longbook_choice_eng-1"]
    first, second = examples
    assert first.meta["options"]["B"] == "The dragon Elmo" and first.answers == ["B"]
    assert second.answers == ["D"] and first.task == "infbench_mc"
    assert task.load(infbench_dir / "longbook_choice_eng.jsonl")[0].answers == ["B"]
    prompt = _question_after_context(task, tokenizer, first, "Whom did Walking Georgie meet?")
    assert "(B) The dragon Elmo" in prompt.after
    assert task.extract("B)", first) == "B"
    assert task.score(task.extract("B) The dragon", first), first) == {"accuracy": 1.0}
    assert task.score(task.extract("A", first), first) == {"accuracy": 0.0}
    assert task.extract("no idea, sorry", first) == ""
    assert task.score("", first) == {"accuracy": 0.0}


def test_infbench_reader_rejects_answer_outside_options(tmp_path):
    record = {"id": 3, "context": "x", "input": "q", "answer": ["zzz"], "options": ["a", "b"]}
    path = _write_jsonl(tmp_path / "longbook_choice_eng.jsonl", [record])
    with pytest.raises(DataError, match="neither an option"):
        read_examples("infbench", path)
    with pytest.raises(FileNotFoundError, match="longbook_qa_eng"):
        get_task("infbench_qa").load(tmp_path)


def test_infbench_qa_and_sum(infbench_dir, tokenizer):
    qa = get_task("infbench_qa")
    (ex,) = qa.load(infbench_dir)
    _question_after_context(qa, tokenizer, ex, "Whom did Georgie meet?")
    assert qa.extract(" The dragon Elmo.\nMore text", ex) == "The dragon Elmo"
    assert qa.score("The dragon Elmo", ex) == {"f1": pytest.approx(2 / 3), "subem": 1.0}
    assert qa.score("a wizard", ex) == {"f1": 0.0, "subem": 0.0}

    summ = get_task("infbench_sum")
    (ex,) = summ.load(infbench_dir / "longbook_sum_eng.jsonl")
    prompt = summ.prompt(tokenizer, ex, "BOOK TEXT")
    assert prompt.context == "BOOK TEXT" and "summary" in prompt.after
    # LCS "the cat on the mat": 5 of 6 tokens on each side -> F = 5/6.
    assert summ.score("the cat sat on the mat", ex)["rougeLsum"] == pytest.approx(5 / 6)
    assert summ.score(" the cat was on the mat ", ex)["rougeLsum"] == pytest.approx(1.0)
    assert summ.score("", ex)["rougeLsum"] == 0.0


# ----------------------------------------------------------------------------- LongBench v2


@pytest.fixture(scope="module")
def longbench():
    return get_task("longbench_v2").load(shared_path("longbench_v2"))


def test_longbench_v2_prompt_extract_score(longbench, tokenizer):
    task = get_task("longbench_v2")
    ex = longbench[0]
    prompt = _question_after_context(task, tokenizer, ex, ex.question.strip())
    assert prompt.after.rstrip().endswith("The correct answer is (")
    gold = ex.answers[0]
    wrong = next(k for k in "ABCD" if k != gold)
    assert task.extract(f"{gold}) because ...", ex) == gold
    assert task.score(task.extract(f"{gold})", ex), ex) == {"accuracy": 1.0}
    assert task.score(task.extract(f"{wrong})", ex), ex) == {"accuracy": 0.0}
    assert task.extract("I cannot tell from the text", ex) == ""
    assert task.score("", ex) == {"accuracy": 0.0}
    assert task.score(f"The correct answer is ({gold})", ex) == {"accuracy": 1.0}


def _mc_record(answer: str, correct: bool, **meta):
    return {"answer": answer, "scores": {"accuracy": float(correct)}, "meta": meta}


def test_longbench_v2_summarize_by_difficulty_and_length():
    task = get_task("longbench_v2")
    records = [
        _mc_record("A", True, difficulty="easy", length="short"),
        _mc_record("B", False, difficulty="easy", length="short"),
        _mc_record("C", True, difficulty="hard", length="long"),
        _mc_record("", False, difficulty="hard", length="long"),
    ]
    out = task.summarize(records)
    assert out["accuracy_easy"] == 0.5 and out["n_easy"] == 2
    assert out["accuracy_hard"] == 0.5 and out["n_hard"] == 2
    assert out["accuracy_short"] == 0.5 and out["accuracy_long"] == 0.5
    assert "accuracy_medium" not in out
    assert out["unparsed"] == 1 and out["unparsed_rate"] == 0.25
    assert out["accuracy_parsed"] == pytest.approx(2 / 3)


def test_longbench_v2_end_to_end_tiny_model(tmp_path, tiny_loaded):
    from longctx.eval.config import EvalConfig
    from longctx.eval.runner import run_eval

    shared_path("longbench_v2")
    cfg = EvalConfig(
        task="longbench_v2",
        data=str(shared_path("longbench_v2")),
        max_length="1k",
        limit=2,
        max_new_tokens=3,
        out=str(tmp_path / "run"),
    )
    metrics = run_eval(cfg, loaded=tiny_loaded)
    (group,) = metrics["groups"]
    assert group["n"] == 2 and group["truncated"] == 2 and group["prompt_tokens"] <= 1024
    assert {"accuracy", "unparsed", "unparsed_rate"} <= set(group)
    assert metrics["metric"] == "accuracy" and metrics["domain"] == "out"


# ----------------------------------------------------------------------------- Loong


class FakeJudge(Judge):
    """Answers from a list; an exception in the list is raised instead."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.prompts: list[str] = []

    def grade_text(self, prompt: str) -> str:
        self.prompts.append(prompt)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture(scope="module")
def loong():
    return get_task("loong_fin").load(shared_path("loong_financial_en"))


def test_loong_prompt_and_proxy_score(loong, tokenizer):
    task = get_task("loong_fin")
    ex = loong[0]
    prompt = _question_after_context(task, tokenizer, ex, ex.question.strip())
    assert ex.meta["instruction"].strip() in prompt.after
    for doc in ex.documents:
        assert f": {doc.title}\n" in prompt.context
    again = task.document_context(ex, "full")
    assert again.doc_ids == task.document_context(ex, "full").doc_ids  # seeded shuffle
    assert sorted(again.doc_ids) == sorted(d.id for d in ex.documents)
    assert task.score(task.extract(f" {ex.answers[0]} ", ex), ex) == {"f1": 1.0}
    assert task.score("nothing relevant", ex)["f1"] < 0.2


def test_loong_judge_score_and_summarize(loong):
    task = get_task("loong_fin")
    ex = loong[0]
    judge = FakeJudge(
        ["Fully right.\n[[100]]", "Half.\n[[40]]", "no score here", JudgeError("down")]
    )
    results = [task.judge_score(f"answer {i}", ex, judge) for i in range(4)]
    assert ex.answers[0] in judge.prompts[0] and "answer 0" in judge.prompts[0]
    assert results[0] == {
        "judge": 1.0,
        "perfect": 1.0,
        "judge_raw": "Fully right.\n[[100]]",
        "judge_error": None,
    }
    assert results[1]["judge"] == 0.4 and results[1]["perfect"] == 0.0
    assert results[2]["judge"] is None and results[2]["perfect"] is None
    assert results[2]["judge_raw"] == "no score here" and results[2]["judge_error"]
    assert results[3]["judge"] is None and results[3]["judge_raw"] is None
    assert "down" in results[3]["judge_error"]

    records = [
        {"scores": {"f1": 0.5, **r}, "meta": {"level": level}}
        for r, level in zip(results, [1, 1, 2, 3], strict=True)
    ]
    out = task.summarize(records)
    assert (
        out["judge_mean"] == pytest.approx(0.7)
        and out["perfect_rate"] == 0.5
        and out["judged"] == 2
    )
    assert out["judge_unparsed"] == 1 and out["judge_failed"] == 1
    assert out["judge_level1"] == pytest.approx(0.7) and "judge_level2" not in out
    assert task.summarize([{"scores": {"f1": 0.1}, "meta": {}}]) == {}


# ----------------------------------------------------------------------------- L-Eval


@pytest.fixture(scope="module")
def leval_dir():
    return shared_path("leval")


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("leval_coursera", "coursera"),
        ("leval_quality", "quality"),
        ("leval_tpo", "tpo"),
        ("leval_legal_contract_qa", "legal_contract_qa"),
        ("leval_scientific_qa", "scientific_qa"),
        ("leval_topic_retrieval_longchat", "topic_retrieval_longchat"),
    ],
)
def test_leval_loads_folder_or_file_and_prompts(name, stem, leval_dir, tokenizer):
    task = get_task(name)
    from_folder = task.load(leval_dir)
    from_file = task.load(leval_dir / f"{stem}.jsonl")
    assert from_folder and [e.id for e in from_folder] == [e.id for e in from_file]
    assert all(e.id.startswith(f"{stem}-") and e.task == name for e in from_folder)
    ex = from_folder[0]
    _question_after_context(task, tokenizer, ex, ex.question.strip())
    if task.metric == "accuracy":
        for e in from_folder:
            assert len(e.meta["options"]) == 4 and e.meta["gold"]
            assert set(e.meta["gold"]) <= set(e.meta["options"])


def test_leval_quality_and_tpo_scoring(leval_dir):
    quality = get_task("leval_quality")
    ex = quality.load(leval_dir)[0]
    assert ex.answers[0].startswith("(B)") and ex.meta["gold"] == "B"
    assert quality.score(quality.extract(" B", ex), ex) == {"accuracy": 1.0}
    assert quality.score(quality.extract(" (C)", ex), ex) == {"accuracy": 0.0}
    assert quality.extract(" AC", ex) == ""  # two letters for a single-answer question
    tpo = get_task("leval_tpo")
    ex = tpo.load(leval_dir)[0]
    assert ex.meta["gold"] == "A" and tpo.score(tpo.extract(" A.", ex), ex) == {"accuracy": 1.0}


def test_leval_coursera_compares_letter_sets(leval_dir):
    task = get_task("leval_coursera")
    ex = next(e for e in task.load(leval_dir) if e.meta["gold"] == "BD")
    for output in (" BD", " DB", " B, D", " (B) and (D)", " The answers are B and D."):
        assert task.extract(output, ex) == "BD", output
        assert task.score(task.extract(output, ex), ex) == {"accuracy": 1.0}
    assert task.score(task.extract(" B", ex), ex) == {"accuracy": 0.0}
    assert task.score(task.extract(" BCD", ex), ex) == {"accuracy": 0.0}
    assert task.extract(" not sure", ex) == ""
    assert task.summarize([_mc_record("BD", True), _mc_record("", False)])["unparsed"] == 1


def test_leval_open_tasks_scoring(leval_dir):
    legal = get_task("leval_legal_contract_qa")
    ex = legal.load(leval_dir)[0]
    gold = ex.answers[0]
    assert legal.extract(f" {gold}\nSecond line.", ex).startswith(gold)
    assert legal.score(gold, ex) == {"f1": 1.0, "rougeL": pytest.approx(1.0)}
    assert legal.score("unrelated words", ex) == {"f1": 0.0, "rougeL": 0.0}
    science = get_task("leval_scientific_qa")
    ex = science.load(leval_dir)[0]
    assert science.extract(" relu, selu\nmore", ex) == "relu, selu"
    scores = science.score(ex.answers[0], ex)
    assert scores["f1"] == 1.0 and scores["rougeL"] == pytest.approx(1.0)
    topic = get_task("leval_topic_retrieval_longchat")
    ex = topic.load(leval_dir)[0]
    assert ex.answers == ["The role of art in society"]
    assert topic.score("The first topic was the role of art in society", ex) == {
        "subem": 1.0,
        "em": 0.0,
    }
    assert topic.score("The role of art in society.", ex) == {"subem": 1.0, "em": 1.0}
    assert topic.score("space tourism", ex) == {"subem": 0.0, "em": 0.0}
