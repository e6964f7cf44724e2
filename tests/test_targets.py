"""Target formats of the training variants and the parsers that read them back."""

from __future__ import annotations

import pytest

from longctx.data.context import BuiltContext, build_context
from longctx.data.example import Document, Example
from longctx.train.targets import (
    ANSWER_PREFIX,
    INSTRUCTIONS,
    TARGET_FORMATS,
    best_quote,
    make_targets,
    parse_answer,
    parse_cited_ids,
    parse_content_blocks,
    parse_quotes,
    reward_example,
)

RAVEL = (
    "Joseph Maurice Ravel was a French composer. He was born in Ciboure, near Biarritz, in 1875. "
    "He wrote Bolero."
)
BOLERO = (
    "Boléro is a one-movement orchestral piece by the French composer Maurice Ravel. "
    "It premiered in 1928."
)


def make_example() -> Example:
    return Example(
        id="q1",
        question="Where was the composer of Bolero born?",
        answers=["Ciboure", "Ciboure, France"],
        documents=[
            Document("a", "Maurice Ravel", RAVEL, is_gold=True),
            Document("b", "Bolero", BOLERO, is_gold=True),
            Document("c", "Paris", "Paris is the capital of France. It has many museums."),
            Document("d", "Lyon", "Lyon is a city in France. It sits on the Rhone."),
        ],
    )


@pytest.fixture
def built() -> tuple[Example, BuiltContext]:
    example = make_example()
    return example, build_context(example, "full", depth=0.5, seed=0)


def test_formats_and_instructions():
    assert TARGET_FORMATS == ("answer", "ids", "ids_content", "ids_quotes", "reasoning")
    assert set(INSTRUCTIONS) == set(TARGET_FORMATS)
    assert all(ANSWER_PREFIX in text for text in INSTRUCTIONS.values())
    assert "[DOC i]" in INSTRUCTIONS["ids"] and "30 words" in INSTRUCTIONS["ids_quotes"]


def test_make_targets_round_trip(built):
    example, context = built
    gold = context.gold_positions
    assert gold == [2, 3]
    targets = make_targets(example, context)
    assert tuple(targets) == TARGET_FORMATS
    assert targets["answer"] == "The answer is: Ciboure"
    assert targets["ids"] == "Relevant documents: [DOC 2], [DOC 3]\nThe answer is: Ciboure"
    for name, text in targets.items():
        assert text.endswith("The answer is: Ciboure")
        assert parse_answer(text) == "Ciboure"
        assert parse_cited_ids(text) == ([] if name == "answer" else gold)


def test_content_target_reproduces_gold_documents(built):
    example, context = built
    blocks = parse_content_blocks(make_targets(example, context)["ids_content"])
    assert blocks == {i: context.documents[i - 1].text for i in context.gold_positions}


def test_quote_targets_are_short_verbatim_and_attributed(built):
    example, context = built
    targets = make_targets(example, context)
    quotes = parse_quotes(targets["ids_quotes"])
    assert [doc_id for doc_id, _ in quotes] == context.gold_positions
    for doc_id, quote in quotes:
        assert quote in context.documents[doc_id - 1].text
        assert len(quote.split()) <= 30
    by_doc = dict(quotes)
    ravel_id = next(i for i in context.gold_positions if context.documents[i - 1].id == "a")
    assert by_doc[ravel_id] == "He was born in Ciboure, near Biarritz, in 1875"  # has the answer
    assert parse_quotes(targets["reasoning"]) == quotes


def test_reasoning_target_is_numbered(built):
    example, context = built
    lines = make_targets(example, context)["reasoning"].splitlines()
    assert lines[0].startswith("1. [DOC 2] states that")
    assert lines[2] == "3. Therefore, the answer is Ciboure."
    assert lines[3] == "The answer is: Ciboure"


def test_quote_max_tokens_keeps_the_answer_window():
    text = " ".join(f"w{i}" for i in range(40)) + " Ciboure " + " ".join("x" * 3 for _ in range(9))
    quote = best_quote(text, ["Ciboure"], max_tokens=10)
    assert len(quote.split()) == 10 and "Ciboure" in quote and quote in text


def test_best_quote_falls_back_to_question_overlap():
    text = "The sky is blue. Ravel wrote the ballet Bolero in 1928. Cats sleep a lot."
    quote = best_quote(text, ["nowhere"], question="When did Ravel write Bolero?")
    assert quote == "Ravel wrote the ballet Bolero in 1928"
    assert best_quote("", ["x"]) == ""
    assert best_quote('He said "yes" to it.', ["yes"]) == "He said 'yes' to it"


def test_no_gold_and_no_answer(built):
    example, _ = built
    context = build_context(example, "none")
    targets = make_targets(example, context)
    assert targets["ids"].startswith("Relevant documents: none")
    assert parse_cited_ids(targets["ids_quotes"]) == []
    assert targets["reasoning"].startswith("1. Therefore, the answer is Ciboure.")
    with pytest.raises(ValueError):
        make_targets(Example("x", "q?", []), context)


def test_reward_example(built):
    example, context = built
    record = reward_example(example, context)
    assert record["gold_ids"] == [2, 3] and record["answers"] == example.answers
    assert record["documents"][2] == context.documents[1].text
    assert record["question"] == example.question


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is: Paris.", "Paris"),
        ("the answer is:   Paris  \nmore text", "Paris"),
        ("The answer is: Lyon\nwait.\nThe answer is: Paris", "Paris"),
        ("The answer is: U.S.", "U.S"),
        ("The answer is:", ""),
        ("The answer is Paris", None),
        ("", None),
    ],
)
def test_parse_answer(text, expected):
    assert parse_answer(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Relevant documents: [DOC 3], [DOC 7]\nThe answer is: x", [3, 7]),
        ("[DOC 3, 7] and [Doc 2 and DOC 4]; [doc 3]", [3, 7, 2, 4]),
        ("see DOC 5 and DOC #6, DOC 5 again", [5, 6]),
        ("DOC 2, 1990 was a year", [2]),
        ("[DOC 1]\nThe answer is: [DOC 9]", [1]),
        ("Relevant documents: none\nThe answer is: x", []),
        ("documents 4 and 5", []),
    ],
)
def test_parse_cited_ids(text, expected):
    assert parse_cited_ids(text) == expected


def test_parse_quotes():
    text = (
        '[DOC 3] "first quote" and “curly one”\n'
        '"unattributed"\n'
        '[DOC 1, 4] "to four" [DOC 2] " "\n'
        'The answer is: "not a quote"'
    )
    assert parse_quotes(text) == [
        (3, "first quote"),
        (3, "curly one"),
        (None, "unattributed"),
        (4, "to four"),
    ]
    assert parse_quotes("no quotes here") == []


def test_parse_content_blocks():
    text = (
        "Relevant documents: [DOC 2], [DOC 5]\n"
        "[DOC 2] (Title: T) Body two\ncontinues here.\n"
        "  [DOC 5] Body five\n"
        "[DOC 2] duplicate\n"
        "The answer is: x [DOC 7]"
    )
    assert parse_content_blocks(text) == {2: "Body two\ncontinues here.", 5: "Body five"}
    assert parse_content_blocks("The answer is: x") == {}
