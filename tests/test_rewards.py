"""GRPO rewards: ranges, orderings, edge cases, the judge, the registry and the TRL adapter."""

from __future__ import annotations

import functools

import pytest

from longctx.data.context import build_context
from longctx.data.example import Document, Example
from longctx.train.rewards import (
    REWARD_RANGES,
    REWARDS,
    as_trl_reward,
    get_reward,
    make_reward,
    parse_judge_output,
    register_reward,
    reward_components,
    reward_range,
)
from longctx.train.targets import make_targets, reward_example

RAVEL = (
    "Joseph Maurice Ravel was a French composer. He was born in Ciboure, near Biarritz, in 1875. "
    "He wrote Bolero."
)
BOLERO = (
    "Boléro is a one-movement orchestral piece by the French composer Maurice Ravel. "
    "It premiered in 1928."
)
PARIS = "Paris is the capital of France. It has many museums."
LYON = "Lyon is a city in France. It sits on the Rhone."
QUOTE_R = "He was born in Ciboure, near Biarritz, in 1875"
QUOTE_B = "orchestral piece by the French composer Maurice Ravel"
IDS = "Relevant documents: [DOC 2], [DOC 4]"
STEPS = f'1. [DOC 4] states that "{QUOTE_B}".\n2. [DOC 2] states that "{QUOTE_R}".\n'
NAMES = ("answer", "ids", "ids_content", "ids_quotes", "judge")

PERFECT = {
    "answer": "The answer is: Ciboure",
    "ids": f"{IDS}\nThe answer is: Ciboure",
    "ids_content": f"{IDS}\n[DOC 2] {RAVEL}\n[DOC 4] {BOLERO}\nThe answer is: Ciboure",
    "ids_quotes": f'{IDS}\n[DOC 2] "{QUOTE_R}"\n[DOC 4] "{QUOTE_B}"\nThe answer is: Ciboure',
    "judge": f"{STEPS}3. Therefore, the answer is Ciboure.\nThe answer is: Ciboure",
}
BAD = {
    "wrong_answer": {k: v.replace(": Ciboure", ": Paris") for k, v in PERFECT.items()},
    "wrong_ids": {
        "answer": "The answer is: Ciboure",
        "ids": "Relevant documents: [DOC 1], [DOC 3]\nThe answer is: Ciboure",
        "ids_content": "Relevant documents: [DOC 1], [DOC 3]\n"
        f"[DOC 1] {PARIS}\n[DOC 3] {LYON}\nThe answer is: Ciboure",
        "ids_quotes": "Relevant documents: [DOC 1], [DOC 3]\n"
        '[DOC 1] "Paris is the capital of France"\n[DOC 3] "Lyon is a city in France"\n'
        "The answer is: Ciboure",
        "judge": '1. [DOC 1] states that "Paris is the capital of France".\n'
        "2. Therefore, the answer is Ciboure.\nThe answer is: Ciboure",
    },
    "hallucinated": {
        name: f'{IDS}\n[DOC 2] "Ravel was born on the Moon in a crater"\n'
        '[DOC 4] "Bolero was composed by Claude Debussy in Vienna"\nThe answer is: Ciboure'
        for name in NAMES
    },
    "malformed": dict.fromkeys(NAMES, "I think it might be Ciboure, see DOC 2 maybe"),
    "empty": dict.fromkeys(NAMES, ""),
}


class FakeJudge:
    """Returns a fixed answer (or raises it when it is an exception) and records prompts."""

    def __init__(self, output):
        self.output = output
        self.prompts: list[str] = []

    def grade(self, prompt: str):
        self.prompts.append(prompt)
        if isinstance(self.output, Exception):
            raise self.output
        return self.output


GOOD_JUDGE = {"reasoning": 1, "grounding": 1, "correct": 1}


def make_example(judge=None) -> dict:
    example = {
        "question": "Where was the composer of Bolero born?",
        "answers": ["Ciboure"],
        "gold_ids": [2, 4],
        "documents": {1: PARIS, 2: RAVEL, 3: LYON, 4: BOLERO},
    }
    example["judge"] = judge if judge is not None else FakeJudge(GOOD_JUDGE)
    return example


def score(name: str, completion: str, **extra) -> float:
    return get_reward(name)(completion, {**make_example(), **extra})


def test_registry_has_exactly_the_five_rewards():
    assert set(REWARDS) == set(NAMES) == set(REWARD_RANGES)
    assert REWARD_RANGES == {
        "answer": (0.0, 1.0),
        "ids": (0.0, 1.5),
        "ids_content": (-0.3, 2.1),
        "ids_quotes": (-0.5, 2.1),
        "judge": (0.0, 2.0),
    }
    with pytest.raises(KeyError):
        get_reward("nope")
    with pytest.raises(ValueError):
        register_reward("ids")(lambda completion, example: 0.0)


@pytest.mark.parametrize("name", NAMES)
def test_scores_in_range_and_perfect_is_max(name):
    low, high = REWARD_RANGES[name]
    scores = {"perfect": score(name, PERFECT[name])}
    scores |= {case: score(name, texts[name]) for case, texts in BAD.items()}
    assert all(isinstance(s, float) and low <= s <= high for s in scores.values()), scores
    assert scores["perfect"] == pytest.approx(high)
    assert scores["empty"] == 0.0
    assert scores["perfect"] > scores["malformed"] >= scores["empty"]
    assert scores["perfect"] > scores["wrong_answer"]


@pytest.mark.parametrize("name", ["ids", "ids_content", "ids_quotes"])
def test_orderings_of_retrieval_rewards(name):
    perfect, wrong_ids, malformed, wrong_answer = (
        score(name, PERFECT[name]),
        score(name, BAD["wrong_ids"][name]),
        score(name, BAD["malformed"][name]),
        score(name, BAD["wrong_answer"][name]),
    )
    assert perfect > wrong_ids > malformed
    assert perfect > wrong_answer > malformed
    hallucinated = score(name, BAD["hallucinated"][name])
    if name == "ids":  # R_ID does not look at quotes
        assert hallucinated == perfect
    else:
        assert hallucinated < perfect


def test_answer_reward_edge_cases():
    assert score("answer", "The answer is: ciboure.") == 1.0
    assert score("answer", "The answer is: in Ciboure, France") == 1.0  # SubEM
    assert score("answer", "Ciboure") == 0.0  # no answer line
    assert score("answer", "The answer is: Ciboure\nThe answer is: Paris") == 0.0  # last wins
    assert score("answer", "The answer is:") == 0.0
    capped = make_reward("answer", max_answer_tokens=2)
    assert capped("The answer is: Paris or Ciboure", {"answers": ["Ciboure"]}) == 0.0
    assert capped("The answer is: Ciboure", {"answers": ["Ciboure"]}) == 1.0
    partial = make_reward("answer", f1_weight=0.5)
    assert partial("The answer is: Ciboure town", {"answers": ["Ciboure village"]}) == 0.25


def test_ids_reward_partial_credit():
    assert score("ids", "[DOC 2]\nThe answer is: Ciboure") == pytest.approx(0.5 * 2 / 3 + 1.0)
    assert score("ids", "[DOC 2], [DOC 4]\nThe answer is: Paris") == 0.5


def test_ids_content_parts():
    parts = reward_components("ids_content", PERFECT["ids_content"], make_example())
    assert parts == pytest.approx(
        {"ids_f1": 1, "content": 1, "format": 1, "irrelevant": 0, "answer": 1, "reward": 2.1}
    )
    half = f"{IDS}\n[DOC 2] {RAVEL[:45]}\nThe answer is: Ciboure"
    content = reward_components("ids_content", half, make_example())["content"]
    assert 0.0 < content < 0.5  # one half-copied document out of two
    spam = " ".join(f"[DOC {i}]" for i in range(1, 10)) + "\n[DOC 7] x"
    parts = reward_components("ids_content", spam, make_example())
    assert parts["irrelevant"] == 3 and parts["reward"] >= REWARD_RANGES["ids_content"][0]


def test_ids_quotes_verification():
    example = make_example()
    parts = reward_components("ids_quotes", BAD["hallucinated"]["ids_quotes"], example)
    assert parts["precision"] == 0 and parts["coverage"] == 0 and parts["ids_f1"] == 0
    one = f'{IDS}\n[DOC 2] "{QUOTE_R}"\n[DOC 2] "born on the Moon, sadly"\nThe answer is: Ciboure'
    parts = reward_components("ids_quotes", one, example)
    assert parts["precision"] == 0.5 and parts["coverage"] == 0.5 and parts["ids_f1"] == 1
    long_quote = " ".join([QUOTE_R] * 4)
    parts = reward_components("ids_quotes", f'[DOC 2] "{long_quote}"\nThe answer is: x', example)
    assert parts["precision"] == 0  # over 30 tokens: invalid
    parts = reward_components("ids_quotes", '[DOC 2] "Ciboure"\nThe answer is: x', example)
    assert parts["precision"] == 0  # too short to verify anything
    misattributed = f'[DOC 4] "{QUOTE_R}"\nThe answer is: Ciboure'
    assert reward_components("ids_quotes", misattributed, example)["precision"] == 0
    loose = reward_components("ids_quotes", misattributed, example, strict_attribution=False)
    assert loose["precision"] == 1 and loose["coverage"] == 0.5
    fuzzy = f'[DOC 2] "{QUOTE_R.replace("Biarritz", "Biaritz")}"\nThe answer is: Ciboure'
    assert reward_components("ids_quotes", fuzzy, example)["precision"] == 1


def test_ids_quotes_length_penalty():
    padded = PERFECT["ids_quotes"].replace("The answer", "filler " * 400 + "\nThe answer")
    parts = reward_components("ids_quotes", padded, make_example())
    assert parts["overflow"] == 1.0
    assert parts["reward"] == pytest.approx(REWARD_RANGES["ids_quotes"][1] - 0.5)


def test_judge_reward_scores_and_prompt():
    judge = FakeJudge("reasoning: 1\ngrounding: 0\ncorrect: 1")
    example = make_example(judge)
    assert get_reward("judge")(PERFECT["judge"], example) == pytest.approx(2 / 3 + 1.0)
    prompt = judge.prompts[0]
    assert example["question"] in prompt and "Ciboure" in prompt and QUOTE_R in prompt
    assert f"[DOC 2] {RAVEL}" in prompt and PARIS not in prompt  # only cited documents
    assert "judge_failures" not in example


@pytest.mark.parametrize(
    "output",
    [RuntimeError("judge down"), None, "no idea", {"reasoning": 1}, {**GOOD_JUDGE, "correct": 7}],
)
def test_judge_failures_are_neutral_and_recorded(output):
    example = make_example(FakeJudge(output))
    parts = reward_components("judge", PERFECT["judge"], example)
    assert parts["judge"] == 0.5 and parts["judge_failed"] == 1.0
    assert parts["reward"] == pytest.approx(1.5)
    assert len(example["judge_failures"]) == 1 and example["judge_failures"][0]["reason"]


def test_judge_missing_and_no_steps():
    example = make_example()
    del example["judge"]
    assert get_reward("judge")(PERFECT["judge"], example) == pytest.approx(1.5)
    assert len(example["judge_failures"]) == 1
    judge = FakeJudge(GOOD_JUDGE)
    assert get_reward("judge")("The answer is: Ciboure", make_example(judge)) == 1.0
    assert judge.prompts == []  # no numbered steps: not sent to the judge


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("reasoning: 1\ngrounding: 0\ncorrect: 1", {"reasoning": 1, "grounding": 0, "correct": 1}),
        ('Sure! {"reasoning": 1, "grounding": true, "correct": "0"}', [1, 1, 0]),
        ("**Reasoning**: yes, Grounding = no, correct: 1.0", [1, 0, 1]),
        ("reasoning: 1\ngrounding: 0", None),
        ("reasoning: 2\ngrounding: 0\ncorrect: 1", None),
        ("{broken json", None),
    ],
)
def test_parse_judge_output(text, expected):
    parsed = parse_judge_output(text)
    if isinstance(expected, list):
        expected = dict(zip(("reasoning", "grounding", "correct"), expected, strict=True))
    assert parsed == expected


def test_weight_overrides():
    assert make_reward("ids", w_ids=1.0)(PERFECT["ids"], make_example()) == 2.0
    assert reward_range("ids", w_ids=1.0) == (0.0, 2.0)
    assert score("ids", PERFECT["ids"], reward_weights={"w_answer": 0.0, "unrelated": 1}) == 0.5
    assert score("ids", PERFECT["ids"], reward_weights={"ids": {"w_ids": 2.0}}) == 3.0
    bound = make_reward("ids", w_ids=1.0)
    assert bound(PERFECT["ids"], {**make_example(), "reward_weights": {"w_ids": 0.0}}) == 1.0
    assert isinstance(make_reward("ids"), functools.partial)
    with pytest.raises(TypeError):
        make_reward("ids", w_bogus=1.0)


def test_perfect_targets_from_make_targets_score_max():
    docs = [
        Document("a", "Maurice Ravel", RAVEL, is_gold=True),
        Document("b", "Bolero", BOLERO, is_gold=True),
        Document("c", "Paris", PARIS),
        Document("d", "Lyon", LYON),
    ]
    example = Example("q1", "Where was the composer of Bolero born?", ["Ciboure"], docs)
    context = build_context(example, "full", seed=3)
    targets = make_targets(example, context)
    record = reward_example(example, context)
    pairs = {"answer": "answer", "ids": "ids", "ids_content": "ids_content"}
    pairs |= {"ids_quotes": "ids_quotes", "reasoning": "judge"}
    for target, name in pairs.items():
        record["judge"] = FakeJudge(GOOD_JUDGE)
        assert get_reward(name)(targets[target], record) == pytest.approx(REWARD_RANGES[name][1])


def test_as_trl_reward_strings_and_chat():
    fn = as_trl_reward("ids_quotes")
    assert fn.__name__ == "reward_ids_quotes"
    example = make_example()
    columns = {k: [example[k]] * 3 for k in ("answers", "gold_ids", "question")}
    columns["documents"] = [{str(k): v for k, v in example["documents"].items()}] * 3  # JSON keys
    completions = [PERFECT["ids_quotes"], BAD["malformed"]["ids_quotes"], ""]
    logged: dict[str, float] = {}
    scores = fn(
        prompts=["p"] * 3,
        completions=completions,
        completion_ids=[[1]] * 3,
        trainer_state=None,
        log_metric=logged.__setitem__,
        **columns,
    )
    assert scores == [get_reward("ids_quotes")(c, make_example()) for c in completions]
    assert scores[0] == pytest.approx(2.1) and "ids_quotes/precision" in logged
    chat = [[{"role": "assistant", "content": c}] for c in completions]
    prompts = [[{"role": "user", "content": "q"}]] * 3
    assert fn(prompts=prompts, completions=chat, **columns) == scores
    parts = [[{"role": "assistant", "content": [{"type": "text", "text": PERFECT["ids"]}]}]]
    two = as_trl_reward("ids", w_ids=1.0)
    assert two(["p"], parts, answers=[["Ciboure"]], gold_ids=[[2, 4]], documents=[{}]) == [2.0]


def test_as_trl_reward_judge_injection_and_failures():
    fn = as_trl_reward("judge", judge=FakeJudge(RuntimeError("down")))
    example = make_example()
    scores = fn(
        ["p", "p"],
        [PERFECT["judge"], PERFECT["judge"]],
        answers=[example["answers"]] * 2,
        gold_ids=[example["gold_ids"]] * 2,
        documents=[example["documents"]] * 2,
    )
    assert scores == [1.5, 1.5] and len(fn.judge_failures) == 2


def test_reward_registered_without_weights():
    from longctx.train.rewards.base import SPECS

    register_reward("tmp_len")(lambda completion, example: float(len(completion) > 0))
    try:
        assert reward_components("tmp_len", "x", {}) == {"reward": 1.0}
        assert as_trl_reward("tmp_len")(["p", "p"], ["x", ""]) == [1.0, 0.0]
        with pytest.raises(TypeError):
            make_reward("tmp_len", w=1.0)
    finally:
        REWARDS.pop("tmp_len")
        SPECS.pop("tmp_len")
