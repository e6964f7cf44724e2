"""R_AO, the answer-only reward: is the final answer right?

Formula, with ``a = parse_answer(completion)`` (the text after the last ``"The answer is:"``)::

    R_AO = w_correct * max(SubEM(a, answers), f1_weight * TokenF1(a, answers))

and 0 when there is no answer line, or when ``max_answer_tokens > 0`` and the answer has more
whitespace tokens than that (a guard against listing many candidates to hit the substring).
SubEM and token F1 are the evaluation scorers of :mod:`longctx.eval.scoring`.

Defaults (:class:`AnswerWeights`): ``w_correct=1.0``, ``f1_weight=0.0`` (binary reward),
``max_answer_tokens=0`` (no length guard). Range: ``[0, w_correct]`` = ``[0, 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from longctx.eval.scoring import substring_exact_match, token_f1
from longctx.train.parsing import parse_answer
from longctx.train.rewards.base import bounds_of, clip, register_reward, resolve_weights


@dataclass(frozen=True)
class AnswerWeights:
    """Parameters of R_AO.

    Attributes:
        w_correct: Reward of a correct answer.
        f1_weight: Partial credit: weight of the token F1 of a wrong answer (0 = binary).
        max_answer_tokens: Answers longer than this many whitespace tokens score 0 (0 = no cap).
    """

    w_correct: float = 1.0
    f1_weight: float = 0.0
    max_answer_tokens: int = 0

    def bounds(self) -> tuple[float, float]:
        return bounds_of(0.0, self.w_correct)


def answer_score(
    completion: str, answers: Sequence[str], weights: AnswerWeights | None = None
) -> float:
    """The unweighted answer score in [0, 1] (what other rewards add as ``w_answer * R_AO``).

    Args:
        completion: The model output.
        answers: Gold answers.
        weights: Parameters (only ``f1_weight`` and ``max_answer_tokens`` are used).

    Returns:
        1.0 for a SubEM match, the partial F1 credit otherwise, 0.0 without an answer line.
    """
    w = weights or AnswerWeights()
    predicted = parse_answer(completion)
    if not predicted or not answers:
        return 0.0
    if w.max_answer_tokens > 0 and len(predicted.split()) > w.max_answer_tokens:
        return 0.0
    subem = substring_exact_match(predicted, answers)
    if subem or w.f1_weight <= 0:
        return subem
    return min(1.0, w.f1_weight * token_f1(predicted, answers))


def answer_components(
    completion: str, example: dict[str, Any], weights: AnswerWeights | None = None
) -> dict[str, float]:
    """Components of R_AO: ``answer`` (the score in [0, 1]) and the total ``reward``."""
    w = resolve_weights(AnswerWeights, "answer", example, weights)
    score = answer_score(completion, example.get("answers") or [], w)
    return {"answer": score, "reward": clip(w.w_correct * score, w.bounds())}


@register_reward("answer", weights=AnswerWeights, components=answer_components)
def answer_reward(
    completion: str, example: dict[str, Any], weights: AnswerWeights | None = None
) -> float:
    """R_AO (see the module docstring); range ``[0, w_correct]``."""
    return answer_components(completion, example, weights)["reward"]
