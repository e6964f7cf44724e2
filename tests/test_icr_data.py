"""The in-context-retrieval training-data builder (longctx.data.icr)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from longctx.config import ConfigError, load_config
from longctx.data.errors import DataError
from longctx.data.example import Document
from longctx.data.icr import BuildConfig, build_icr_dataset, relabel, split_of, user_message
from longctx.eval.judge import Judge
from longctx.train.targets import TARGET_FORMATS, parse_cited_ids

from .conftest import shared_path

ROOT = Path(__file__).resolve().parents[1]
HOTPOT = ("hotpotqa", "hotpot_dev_distractor_400.json")


def _hotpot_config(out: Path, limit: int = 30, seed: int = 0) -> BuildConfig:
    path = shared_path(*HOTPOT)
    return BuildConfig(
        sources=[{"format": "hotpotqa", "path": str(path), "limit": limit}],
        max_tokens="1k",
        seed=seed,
        validation_fraction=0.2,
        out=str(out),
    )


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def hotpot_build(tmp_path_factory, tokenizer):
    config = _hotpot_config(tmp_path_factory.mktemp("icr"))
    report = build_icr_dataset(config, tokenizer=tokenizer)
    records = _read(report.train_path) + _read(report.validation_path)
    return config, report, records


def test_every_example_has_its_gold_within_budget(hotpot_build, tokenizer):
    from longctx.data.readers import read_examples

    config, report, records = hotpot_build
    assert report.counts["kept"] == len(records) == 30
    source = {e.id: e for e in read_examples("hotpotqa", config.sources[0].path, limit=30)}
    for rec in records:
        gold_titles = {d["title"] for d in rec["documents"] if d["is_gold"]}
        assert {d.title for d in source[rec["id"]].gold_documents} <= gold_titles
        for fmt in TARGET_FORMATS:
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": user_message(rec["prompt"], fmt)}],
                tokenize=False,
                add_generation_prompt=True,
            )
            n = len(tokenizer.encode(text, add_special_tokens=False))
            assert n <= config.max_tokens
        assert rec["n_tokens"] <= config.max_tokens
        assert rec["n_tokens"] > 0.8 * config.max_tokens  # negatives fill the budget
        assert all(len(d["text"].split()) >= 10 for d in rec["documents"] if not d["is_gold"])


def test_gold_ids_match_doc_tags_and_targets(hotpot_build):
    _, _, records = hotpot_build
    for rec in records:
        blocks = re.split(r"(?:^|\n\n)\[DOC (\d+)\] ", rec["prompt"].rsplit("\n\nQuestion:", 1)[0])
        numbers, bodies = blocks[1::2], blocks[2::2]
        assert numbers == [str(i) for i in range(1, len(rec["documents"]) + 1)]
        gold = [i for i, d in enumerate(rec["documents"], 1) if d["is_gold"]]
        assert rec["gold_ids"] == gold
        for i in gold:
            doc = rec["documents"][i - 1]
            assert bodies[i - 1] == f"(Title: {doc['title']}) {doc['text'].strip()}"
        for fmt in ("ids", "ids_content", "ids_quotes"):
            assert parse_cited_ids(rec["targets"][fmt]) == gold
        assert rec["targets"]["answer"] == f"The answer is: {rec['answers'][0]}"
        assert set(rec["targets"]) == set(TARGET_FORMATS)


def test_depth_is_stratified_and_split_by_question(hotpot_build):
    _, report, records = hotpot_build
    depths = report.card["depth_histogram"]
    assert len(depths) == 5 and all(n >= 3 for n in depths.values())
    assert sum(report.card["length_histogram"]["counts"]) == 30
    for rec in _read(report.validation_path):
        assert split_of(rec["question"], 0.2) == "validation"
    assert 0 < report.counts["validation"] < report.counts["train"]
    card = json.loads((report.out / "data_card.json").read_text())
    assert card["config"]["max_tokens"] == 1024 and card["seed"] == 0


def test_deterministic_for_a_seed(tmp_path, tokenizer):
    a = build_icr_dataset(_hotpot_config(tmp_path / "a", limit=8), tokenizer=tokenizer)
    b = build_icr_dataset(_hotpot_config(tmp_path / "b", limit=8), tokenizer=tokenizer)
    c = build_icr_dataset(_hotpot_config(tmp_path / "c", limit=8, seed=1), tokenizer=tokenizer)
    assert a.train_path.read_text() == b.train_path.read_text()
    assert a.train_path.read_text() != c.train_path.read_text()


def _hotpot_record(qid: str, question: str, answer: str, paragraphs: list[tuple[str, str]]):
    return {
        "_id": qid,
        "question": question,
        "answer": answer,
        "supporting_facts": [[paragraphs[0][0], 0]],
        "context": [[title, [text]] for title, text in paragraphs],
        "type": "bridge",
        "level": "hard",
    }


def test_bad_source_line_names_file_and_line(tmp_path, tokenizer):
    path = tmp_path / "bad.jsonl"
    good = _hotpot_record("q1", "Where?", "Here", [("A", "Alpha is here in the valley.")])
    bad = dict(good, _id="q2")
    del bad["answer"]
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    config = BuildConfig(sources=[{"format": "hotpotqa", "path": str(path)}], out=str(tmp_path))
    with pytest.raises(DataError, match=r"bad\.jsonl, line 2: field 'answer'"):
        build_icr_dataset(config, tokenizer=tokenizer)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"title": "x", "text": "fine"}\n{"title": "y"}\n')
    config = BuildConfig(
        sources=[{"format": "synthetic", "limit": 2}], corpus=str(corpus), out=str(tmp_path)
    )
    with pytest.raises(DataError, match=r"corpus\.jsonl, line 2: field 'text': missing"):
        build_icr_dataset(config, tokenizer=tokenizer)


GOLD = (
    "Marlow Tesk (born 1931) was a Welsh clockmaker and engraver who founded the Tesk Clock "
    "Works in the harbour town of Penvarrow in 1958, where he built tower clocks for churches."
)
NEAR_DUP = GOLD.replace("Welsh clockmaker and engraver", "Welsh clockmaker").replace(
    "tower clocks for churches", "tower clocks for many churches"
)
UNRELATED = (
    "The river Dunmore rises in the northern hills and flows south through farmland and two "
    "market towns before it reaches the sea near the old fishing harbour."
)


class FakeJudge(Judge):
    def __init__(self, verdict: int):
        self.verdict, self.prompts = verdict, []

    def grade_text(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return f'The candidate restates the gold passage.\n{{"relevant": {self.verdict}}}'


def test_relabel_promotes_a_near_duplicate_not_an_unrelated_passage():
    gold = [Document("g", "Marlow Tesk", GOLD, True)]
    negatives = [Document("n1", "Tesk Clock Works", NEAR_DUP), Document("n2", "Dunmore", UNRELATED)]
    result = relabel("Where did Marlow Tesk found his clock works?", ["Penvarrow"], gold, negatives)
    assert [d.id for d in result.promoted] == ["n1"] and result.promoted[0].is_gold
    assert [d.id for d in result.negatives] == ["n2"]
    assert result.flags == {"n1": "fuzzy"} and result.counts["promoted"] == 1


def _planted_build(tmp_path: Path, tokenizer, judge=None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = tmp_path / "source.jsonl"
    record = _hotpot_record(
        "q1",
        "In which harbour town did Marlow Tesk found his clock works?",
        "Penvarrow",
        [("Marlow Tesk", GOLD), ("Dunmore", UNRELATED)],
    )
    source.write_text(json.dumps(record) + "\n")
    corpus = tmp_path / "corpus.jsonl"
    lines = [
        {"id": "dup", "title": "Tesk Clock Works", "text": NEAR_DUP},
        {"id": "same", "title": "Marlow Tesk", "text": "Marlow Tesk later moved to Cardiff " * 3},
        {"id": "short", "title": "Tesk", "text": "Marlow Tesk, clockmaker."},
        {"id": "river", "title": "Dunmore", "text": UNRELATED},
    ]
    corpus.write_text("".join(json.dumps(x) + "\n" for x in lines))
    config = BuildConfig(
        sources=[{"format": "hotpotqa", "path": str(source)}],
        corpus=str(corpus),
        max_tokens=1024,
        validation_fraction=0.0,
        out=str(tmp_path / "out"),
    )
    report = build_icr_dataset(config, tokenizer=tokenizer, judge=judge)
    return report, _read(report.train_path)[0]


def test_planted_false_negative_is_relabelled_in_the_output(tmp_path, tokenizer):
    report, rec = _planted_build(tmp_path, tokenizer)
    docs = {d["id"]: d for d in rec["documents"]}
    assert set(docs) == {"Marlow Tesk", "dup", "river"}  # same title and short ones left out
    assert docs["dup"]["is_gold"] and docs["dup"]["relabelled"] == "fuzzy"
    assert not docs["river"]["is_gold"] and docs["river"]["relabelled"] is None
    dup_pos = list(docs).index("dup") + 1
    assert dup_pos in rec["gold_ids"] and dup_pos in parse_cited_ids(rec["targets"]["ids"])
    assert report.relabel == {"promoted": 1, "confirmed": 0, "rejected": 0, "judge_errors": 0}


def test_judge_rejection_drops_the_promotion_and_is_counted(tmp_path, tokenizer):
    judge = FakeJudge(verdict=0)
    report, rec = _planted_build(tmp_path, tokenizer, judge=judge)
    assert "dup" not in {d["id"] for d in rec["documents"]}
    assert report.relabel["promoted"] == 1 and report.relabel["rejected"] == 1
    assert report.card["relabel"]["rejected"] == 1
    assert "Penvarrow" in judge.prompts[0] and "Tesk Clock Works" in judge.prompts[0]
    report, rec = _planted_build(tmp_path / "yes", tokenizer, judge=FakeJudge(verdict=1))
    assert {d["id"]: d["relabelled"] for d in rec["documents"]}["dup"] == "judge"
    assert report.relabel["confirmed"] == 1


def test_2wiki_alias_reads_the_hotpotqa_format_without_level(tmp_path, tokenizer):
    record = _hotpot_record("w1", "Who made it?", "Tesk", [("Marlow Tesk", GOLD), ("D", UNRELATED)])
    del record["level"]
    record["context"] = [[t, s[0].split(". ")] for t, s in record["context"]]
    path = tmp_path / "dev.json"
    path.write_text(json.dumps([record]))
    config = BuildConfig(
        sources=[{"format": "2wiki", "path": str(path)}],
        validation_fraction=0.0,
        out=str(tmp_path / "out"),
    )
    report = build_icr_dataset(config, tokenizer=tokenizer)
    rec = _read(report.train_path)[0]
    assert rec["task"] == "2wiki" and rec["gold_ids"]


def test_config_rejects_unknown_keys_and_recipe_parses(tmp_path):
    with pytest.raises(ConfigError, match="negatvies"):
        load_config(BuildConfig, None, ["sources=[{format: synthetic}]", "negatvies=3"])
    recipe = ROOT / "recipes" / "data_hotpotqa_1k.yaml"
    assert recipe.read_text().startswith("# longctx data build --config")
    config = load_config(BuildConfig, recipe)
    assert config.max_tokens == 1024 and config.sources[0].format == "hotpotqa"
    assert yaml.safe_load(recipe.read_text())
