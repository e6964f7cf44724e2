"""GRPO rewards for in-context retrieval, one pure function per module, registered by name.

Every reward is ``(completion: str, example: dict, weights=None) -> float``. The example dict
holds ``answers`` (gold answers), ``gold_ids`` (1-based ``[DOC i]`` numbers of the gold documents
in this prompt), ``documents`` (``{DOC number: text}`` for every document of the prompt), and
optionally ``question``, ``reward_weights`` (overrides of the defaults) and, for ``judge``, a
``judge`` object (see :func:`longctx.train.targets.reward_example` to build one).

========================  ===============  ======================================================
name                      default range    formula (module docstrings give the details)
========================  ===============  ======================================================
``answer`` (R_AO)         [0, 1]           SubEM of the parsed answer
``ids`` (R_ID)            [0, 1.5]         0.5 F1(ids) + R_AO
``ids_content`` (R_ID+C)  [-0.3, 2.1]      0.5 F1 + 0.5 content + 0.1 format - 0.1 #non-gold
                                           + R_AO
``ids_quotes`` (R_ID+Q)   [-0.5, 2.1]      0.5 F1 (if a quote verifies) + 0.25 precision
                                           + 0.25 coverage + 0.1 format - 0.5 overflow + R_AO
``judge`` (R+Judge)       [0, 2]           mean of the judge's three 0/1 scores + R_AO
========================  ===============  ======================================================
"""

from __future__ import annotations

from collections.abc import Callable

from longctx.train.rewards.adapters import (
    as_trl_reward,
    make_reward,
    reward_components,
    reward_range,
)
from longctx.train.rewards.answer import AnswerWeights, answer_reward, answer_score
from longctx.train.rewards.base import REWARDS, SPECS, register_reward
from longctx.train.rewards.ids import IdsWeights, ids_reward
from longctx.train.rewards.ids_content import IdsContentWeights, ids_content_reward
from longctx.train.rewards.ids_quotes import IdsQuotesWeights, ids_quotes_reward
from longctx.train.rewards.judge import JudgeWeights, judge_reward, parse_judge_output

REWARD_RANGES: dict[str, tuple[float, float]] = {
    name: spec.weights_type().bounds() for name, spec in SPECS.items()
}


def get_reward(name: str) -> Callable[..., float]:
    """The registered reward ``name``.

    Raises:
        KeyError: When no reward has that name.
    """
    if name not in REWARDS:
        raise KeyError(f"unknown reward {name!r}; choose from {', '.join(REWARDS)}")
    return REWARDS[name]


__all__ = [
    "REWARDS",
    "REWARD_RANGES",
    "AnswerWeights",
    "IdsContentWeights",
    "IdsQuotesWeights",
    "IdsWeights",
    "JudgeWeights",
    "answer_reward",
    "answer_score",
    "as_trl_reward",
    "get_reward",
    "ids_content_reward",
    "ids_quotes_reward",
    "ids_reward",
    "judge_reward",
    "make_reward",
    "parse_judge_output",
    "register_reward",
    "reward_components",
    "reward_range",
]
