"""R+Judge, the judged-reasoning reward: numbered reasoning graded by a judge model, plus R_AO.

The completion should reason in numbered steps (``1. [DOC 3] states that "..."``) and end with
the answer line. A judge object in ``example["judge"]`` (any object with
``grade(prompt: str) -> dict``, e.g. a wrapper around an LLM) receives :func:`judge_prompt` --
the question, the gold answers, the texts of the documents the completion cites and the
completion -- and returns three binary scores ``{"reasoning", "grounding", "correct"}`` (a dict,
or a text that :func:`parse_judge_output` reads). Formula::

    judge  = mean(reasoning, grounding, correct)     if the judge answers properly
           = neutral                                 if the judge fails (see below)
           = 0                                       if require_steps and no numbered step
    R+Judge = w_judge * judge + w_answer * R_AO

A judge failure -- no judge, an exception, ``None``, missing keys, values that are not 0/1 or
unparsable text -- gives the neutral score and appends ``{"reward": "judge", "reason", "output"}``
to ``example.setdefault("judge_failures", [])``; that record is the function's only side
effect. Completions without a numbered step are not sent to the judge.

Defaults (:class:`JudgeWeights`): ``w_judge=1.0``, ``w_answer=1.0``, ``neutral=0.5``,
``require_steps=True``, ``max_doc_chars=2000``, ``max_docs=10``.
Range: ``[0, w_judge + w_answer]`` = ``[0, 2]``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from longctx.train.parsing import parse_cited_ids
from longctx.train.rewards.answer import answer_score
from longctx.train.rewards.base import bounds_of, clip, documents, register_reward, resolve_weights

JUDGE_KEYS = ("reasoning", "grounding", "correct")
_STEP = re.compile(r"^\s*\d+\s*[.)]\s+\S", re.MULTILINE)
_LINE = re.compile(
    r"\b(reasoning|grounding|correct)\b\W{0,3}\s*[:=]\s*[\"']?(true|false|yes|no|\d+(?:\.\d+)?)",
    re.IGNORECASE,
)
_WORDS = {"true": 1.0, "yes": 1.0, "false": 0.0, "no": 0.0}

JUDGE_TEMPLATE = """You are grading a model's answer to a question about a set of documents.

Question: {question}

Gold answer(s): {answers}

Documents cited by the model:
{documents}

Model output:
<<<
{completion}
>>>

Grade three things, each 0 or 1:
- reasoning: the numbered steps are coherent and lead to the final answer.
- grounding: every statement the steps attribute to a [DOC i] is supported by that document above.
- correct: the final answer (after "The answer is:") matches a gold answer.
Reply with exactly three lines:
reasoning: <0 or 1>
grounding: <0 or 1>
correct: <0 or 1>"""


@dataclass(frozen=True)
class JudgeWeights:
    """Weights and settings of R+Judge.

    Attributes:
        w_judge: Weight of the mean judge score.
        w_answer: Weight of the answer score R_AO.
        neutral: Judge score used when the judge fails.
        require_steps: Give a judge score of 0, without calling it, to outputs without a
            numbered step.
        max_doc_chars: Characters of each cited document shown to the judge.
        max_docs: Most cited documents shown to the judge.
    """

    w_judge: float = 1.0
    w_answer: float = 1.0
    neutral: float = 0.5
    require_steps: bool = True
    max_doc_chars: int = 2000
    max_docs: int = 10

    def bounds(self) -> tuple[float, float]:
        return bounds_of(0.0, self.w_judge + self.w_answer)


def _binary(value: Any) -> float | None:
    """A score in {0, 1} from a bool, number or word; ``None`` otherwise."""
    if isinstance(value, str):
        word = value.strip().lower()
        value = _WORDS.get(word, word)
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool | int | float) and float(value) in (0.0, 1.0):
        return float(value)
    return None


def _scores(mapping: Mapping[str, Any]) -> dict[str, float] | None:
    lowered = {str(k).strip().lower(): v for k, v in mapping.items()}
    scores = {k: _binary(lowered.get(k)) for k in JUDGE_KEYS}
    if any(v is None for v in scores.values()):
        return None
    return {k: float(v) for k, v in scores.items() if v is not None}


def parse_judge_output(text: str) -> dict[str, float] | None:
    """Read a judge's text answer: ``"reasoning: 1\\ngrounding: 0\\ncorrect: 1"`` or JSON.

    Args:
        text: The judge's reply (JSON may be embedded in other text).

    Returns:
        ``{"reasoning", "grounding", "correct"}`` scores in {0.0, 1.0}, or ``None`` when a key
        is missing or a value is not 0/1 (also true/false, yes/no).
    """
    if not isinstance(text, str):
        return None
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        try:
            data = json.loads(text[start : end + 1])
        except ValueError:
            data = None
        if isinstance(data, Mapping):
            return _scores(data)
    found: dict[str, str] = {}
    for match in _LINE.finditer(text):
        found.setdefault(match.group(1).lower(), match.group(2))
    return _scores(found)


def judge_prompt(completion: str, example: Mapping[str, Any], weights: JudgeWeights) -> str:
    """The grading prompt: question, gold answers, the cited documents and the completion."""
    docs = documents(example)
    shown = [i for i in parse_cited_ids(completion) if i in docs][: weights.max_docs]
    rendered = []
    for i in shown:
        text = " ".join(docs[i].split())
        if len(text) > weights.max_doc_chars:
            text = text[: weights.max_doc_chars].rstrip() + " ..."
        rendered.append(f"[DOC {i}] {text}")
    return JUDGE_TEMPLATE.format(
        question=str(example.get("question") or "(not given)").strip(),
        answers=" | ".join(str(a) for a in example.get("answers") or []) or "(none)",
        documents="\n\n".join(rendered) or "(none)",
        completion=completion.strip(),
    )


def _grade(completion: str, example: dict[str, Any], weights: JudgeWeights) -> tuple[dict, str]:
    """Call the judge: ``(scores or {}, failure reason or "")``."""
    judge = example.get("judge")
    if judge is None or not callable(getattr(judge, "grade", None)):
        return {}, "no judge with a grade() method in example['judge']"
    try:
        output = judge.grade(judge_prompt(completion, example, weights))
    except Exception as error:  # noqa: BLE001 -- any judge error is a recorded failure
        return {}, f"judge raised {type(error).__name__}: {error}"
    if isinstance(output, str):
        scores = parse_judge_output(output)
    elif isinstance(output, Mapping):
        scores = _scores(output)
    else:
        scores = None
    if scores is None:
        return {"output": output}, "judge output missing or unparsable"
    return scores, ""


def judge_components(
    completion: str, example: dict[str, Any], weights: JudgeWeights | None = None
) -> dict[str, float]:
    """Components of R+Judge: ``steps``, the three judge scores, ``judge`` (their mean),
    ``judge_failed``, ``answer`` and the total ``reward``. Calls the judge (and may record a
    failure) each time."""
    w = resolve_weights(JudgeWeights, "judge", example, weights)
    has_steps = bool(_STEP.search(completion))
    failed = 0.0
    if w.require_steps and not has_steps:
        scores = dict.fromkeys(JUDGE_KEYS, 0.0)
    else:
        scores, reason = _grade(completion, example, w)
        if reason:
            failed = 1.0
            example.setdefault("judge_failures", []).append(
                {"reward": "judge", "reason": reason, "output": repr(scores.get("output"))[:500]}
            )
            scores = dict.fromkeys(JUDGE_KEYS, w.neutral)
    judge = sum(scores[k] for k in JUDGE_KEYS) / len(JUDGE_KEYS)
    answer = answer_score(completion, example.get("answers") or [])
    total = w.w_judge * judge + w.w_answer * answer
    return {
        "steps": float(has_steps),
        **{k: scores[k] for k in JUDGE_KEYS},
        "judge": judge,
        "judge_failed": failed,
        "answer": answer,
        "reward": clip(total, w.bounds()),
    }


@register_reward("judge", weights=JudgeWeights, components=judge_components)
def judge_reward(
    completion: str, example: dict[str, Any], weights: JudgeWeights | None = None
) -> float:
    """R+Judge (see the module docstring); range ``[0, w_judge + w_answer]``."""
    return judge_components(completion, example, weights)["reward"]
