"""R_ID, the document-ids reward: cite the gold documents, then answer.

Formula, with ``cited = parse_cited_ids(completion)`` (the ``[DOC i]`` numbers before the answer
line) and ``gold = example["gold_ids"]``::

    R_ID = w_ids * F1(cited, gold) + w_answer * R_AO

where F1 is the set F1 of cited against gold ids (1 when both are empty, 0 when only one is)
and R_AO the binary answer score of :mod:`longctx.train.rewards.answer`.

Defaults (:class:`IdsWeights`): ``w_ids=0.5``, ``w_answer=1.0``.
Range: ``[0, w_ids + w_answer]`` = ``[0, 1.5]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from longctx.train.parsing import parse_cited_ids
from longctx.train.rewards.answer import answer_score
from longctx.train.rewards.base import (
    bounds_of,
    clip,
    gold_ids,
    register_reward,
    resolve_weights,
    set_f1,
)


@dataclass(frozen=True)
class IdsWeights:
    """Weights of R_ID.

    Attributes:
        w_ids: Weight of the F1 of cited against gold document ids.
        w_answer: Weight of the answer score R_AO.
    """

    w_ids: float = 0.5
    w_answer: float = 1.0

    def bounds(self) -> tuple[float, float]:
        return bounds_of(0.0, self.w_ids + self.w_answer)


def ids_components(
    completion: str, example: dict[str, Any], weights: IdsWeights | None = None
) -> dict[str, float]:
    """Components of R_ID: ``ids_f1``, ``answer`` (both in [0, 1]) and the total ``reward``."""
    w = resolve_weights(IdsWeights, "ids", example, weights)
    f1 = set_f1(parse_cited_ids(completion), gold_ids(example))
    answer = answer_score(completion, example.get("answers") or [])
    total = w.w_ids * f1 + w.w_answer * answer
    return {"ids_f1": f1, "answer": answer, "reward": clip(total, w.bounds())}


@register_reward("ids", weights=IdsWeights, components=ids_components)
def ids_reward(
    completion: str, example: dict[str, Any], weights: IdsWeights | None = None
) -> float:
    """R_ID (see the module docstring); range ``[0, w_ids + w_answer]``."""
    return ids_components(completion, example, weights)["reward"]
