import pytest

from longctx.eval.mc import extract_choice, score_choice, summarise_choices

OPTIONS = {"A": "Paris", "B": "Lyon", "C": "Marseille", "D": "Toulouse"}

CASES = [
    ("The correct answer is (B)", "B"),
    ("B.", "B"),
    ("Answer: b", "B"),
    ("Marseille", "C"),
    ("I think the answer is C because Marseille is a port city.", "C"),
    ("**D**", "D"),
    ("Option A", "A"),
    ("A. Paris", "A"),
    ("(c)", "C"),
    ("None of the above", None),
    ("A good question. The answer is D", "D"),
    ("asdfgh qwerty zxcv", None),
    ("", None),
    ("   \n ", None),
    ("A is tempting, but the answer is B.", "B"),
    ("The answer is A, then again the answer is C.", "C"),
    ("Correct answer: D", "D"),
    ("The answer is **(B)**", "B"),
    ("**Answer:** C", "C"),
    ("Final answer: (A) Paris", "A"),
    ("B) Lyon", "B"),
    ("C: Marseille is right", "C"),
    ("Let me think step by step.\nThe capital is clearly known.\nD", "D"),
    ("The answer is a bit unclear, but I would go with option b", "B"),
    ("A good answer would be hard to give here.", None),
    ("I believe it is Toulouse.", "D"),
    ("toulouse", "D"),
    ("Marseile", "C"),
    ("The answer is A because Paris is the capital.", "A"),
    ("option a is correct", "A"),
    ("Either (A) or (B), I cannot tell.", None),
    ("Paris or Lyon, hard to say.", None),
    ("The best choice would be D.", "D"),
    ("answer is [B]", "B"),
    ("The answer is Berlin", None),
    ("Answer - C", "C"),
    ("A. Paris\nB. Lyon\nAnswer: B", "B"),
]


@pytest.mark.parametrize(("output", "expected"), CASES)
def test_extract_choice_realistic_outputs(output, expected):
    assert extract_choice(output, OPTIONS) == expected


def test_more_letters_and_option_keys_kept_as_spelled():
    options = {k: f"choice number {i}" for i, k in enumerate("ABCDEFGH")}
    assert extract_choice("The answer is (G)", options) == "G"
    assert extract_choice("choice number 5", options) == "F"
    assert extract_choice("Answer: b", {"a": "x", "b": "y"}) == "b"


def test_options_nested_text_picks_longest():
    options = {"A": "Paris", "B": "Paris, Texas", "C": "Lyon"}
    assert extract_choice("It is Paris, Texas.", options) == "B"
    assert extract_choice("It is Paris.", options) == "A"


def test_none_of_the_above_as_an_option():
    options = {"A": "Paris", "B": "None of the above"}
    assert extract_choice("None of the above", options) == "B"


def test_score_and_summary():
    assert score_choice("B", "b") == 1.0
    assert score_choice("A", "B") == 0.0
    assert score_choice(None, "B") == 0.0
    records = [
        {"pred": "A", "gold": "A"},
        {"pred": None, "gold": "B"},
        {"pred": "C", "gold": "D"},
        ("D", "D"),
    ]
    summary = summarise_choices(records)
    assert summary["n"] == 4 and summary["correct"] == 2
    assert summary["accuracy"] == 0.5
    assert summary["unparsed"] == 1 and summary["unparsed_rate"] == 0.25
    assert summary["accuracy_parsed"] == pytest.approx(2 / 3)
    assert summarise_choices([])["accuracy"] == 0.0
