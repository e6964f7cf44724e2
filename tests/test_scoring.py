import pytest

from longctx.eval.scoring import (
    exact_match,
    normalize_answer,
    score_qa,
    substring_exact_match,
    token_f1,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The Beatles!", "beatles"),
        ("  an   Apple a day ", "apple day"),
        ("U.S.A.", "usa"),
        ("Théâtre, the play", "théâtre play"),
        ("“Quoted” — dash", "quoted dash"),
        ("A", ""),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_exact_match_ignores_case_articles_punctuation():
    assert exact_match("the Eiffel Tower.", ["Eiffel tower"]) == 1.0
    assert exact_match("Eiffel", ["Eiffel Tower"]) == 0.0


def test_multiple_gold_answers_take_the_best():
    answers = ["New York City", "NYC"]
    assert exact_match("nyc", answers) == 1.0
    assert substring_exact_match("I think it is NYC.", answers) == 1.0
    assert token_f1("New York", answers) == pytest.approx(2 * 1.0 * (2 / 3) / (1 + 2 / 3))


def test_subem_matches_whole_words_only():
    assert substring_exact_match("He was born in 1984 in Paris", ["1984"]) == 1.0
    assert substring_exact_match("Parisian cafes", ["Paris"]) == 0.0
    assert substring_exact_match("anything", [""]) == 0.0
    assert substring_exact_match("", ["Paris"]) == 0.0


def test_f1_partial_and_empty():
    assert token_f1("the cat sat", ["a cat sat down"]) == pytest.approx(0.8)
    assert token_f1("", ["cat"]) == 0.0
    assert token_f1("dog", ["cat"]) == 0.0
    assert token_f1("", []) == 0.0


def test_score_qa_returns_all_scores():
    scores = score_qa("The answer: Paris", ["Paris"])
    assert scores == {"subem": 1.0, "em": 0.0, "f1": pytest.approx(2 / 3)}
