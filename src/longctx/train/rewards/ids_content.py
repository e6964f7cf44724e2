"""R_ID+C, the ids-and-content reward: cite the gold documents, reproduce them, then answer.

Formula, with ``cited`` the ``[DOC i]`` numbers before the answer line, ``gold`` the gold ids,
``blocks = parse_content_blocks(completion)`` (the text after each line-initial ``[DOC i]``)::

    content    = mean over g in gold of sim(blocks[g], documents[g])   (0 for a missing block)
    format     = 1 if there is an answer line and at least one [DOC i] block, else 0
    irrelevant = min(number of cited non-gold ids, max_irrelevant)
    R_ID+C = w_ids * F1(cited, gold) + w_content * content + w_format * format
             - w_irrelevant * irrelevant + w_answer * R_AO

``sim`` is the normalised Levenshtein similarity ``rapidfuzz.fuzz.ratio / 100`` of the two texts
after ``rapidfuzz.utils.default_process`` and whitespace collapsing (lower-case, no
punctuation): a full reproduction scores 1, half of the document about 0.67, one sentence little.
(Set-based or partial ratios would give a one-sentence "reproduction" full marks.) ``content`` is
1 when there are no gold documents.

Defaults (:class:`IdsContentWeights`): ``w_ids=0.5``, ``w_content=0.5``, ``w_format=0.1``,
``w_irrelevant=0.1``, ``max_irrelevant=3``, ``w_answer=1.0``.
Range: ``[-w_irrelevant * max_irrelevant, w_ids + w_content + w_format + w_answer]``
= ``[-0.3, 2.1]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz

from longctx.train.parsing import parse_answer, parse_cited_ids, parse_content_blocks
from longctx.train.rewards.answer import answer_score
from longctx.train.rewards.base import (
    bounds_of,
    clip,
    documents,
    fuzzy_normal,
    gold_ids,
    register_reward,
    resolve_weights,
    set_f1,
)


@dataclass(frozen=True)
class IdsContentWeights:
    """Weights of R_ID+C.

    Attributes:
        w_ids: Weight of the F1 of cited against gold document ids.
        w_content: Weight of the mean reproduction similarity of the gold documents.
        w_format: Bonus for an answer line and at least one ``[DOC i]`` block.
        w_irrelevant: Penalty per cited non-gold document.
        max_irrelevant: Most non-gold documents penalised (bounds the reward from below).
        w_answer: Weight of the answer score R_AO.
    """

    w_ids: float = 0.5
    w_content: float = 0.5
    w_format: float = 0.1
    w_irrelevant: float = 0.1
    max_irrelevant: int = 3
    w_answer: float = 1.0

    def bounds(self) -> tuple[float, float]:
        low = -self.w_irrelevant * self.max_irrelevant
        return bounds_of(low, self.w_ids + self.w_content + self.w_format + self.w_answer)


def content_similarity(reproduced: str, original: str) -> float:
    """Similarity in [0, 1] of a reproduced document to the original (normalised ``fuzz.ratio``)."""
    a, b = fuzzy_normal(reproduced), fuzzy_normal(original)
    if not a or not b:
        return 0.0
    return fuzz.ratio(a, b) / 100.0


def ids_content_components(
    completion: str, example: dict[str, Any], weights: IdsContentWeights | None = None
) -> dict[str, float]:
    """Components of R_ID+C: ``ids_f1``, ``content``, ``format``, ``irrelevant`` (a count),
    ``answer`` and the total ``reward``."""
    w = resolve_weights(IdsContentWeights, "ids_content", example, weights)
    gold, docs = gold_ids(example), documents(example)
    cited = parse_cited_ids(completion)
    blocks = parse_content_blocks(completion)
    f1 = set_f1(cited, gold)
    if gold:
        sims = [content_similarity(blocks.get(g, ""), docs.get(g, "")) for g in gold]
        content = sum(sims) / len(sims)
    else:
        content = 1.0
    has_format = float(parse_answer(completion) is not None and bool(blocks))
    irrelevant = float(min(len(set(cited) - set(gold)), w.max_irrelevant))
    answer = answer_score(completion, example.get("answers") or [])
    total = (
        w.w_ids * f1
        + w.w_content * content
        + w.w_format * has_format
        - w.w_irrelevant * irrelevant
        + w.w_answer * answer
    )
    return {
        "ids_f1": f1,
        "content": content,
        "format": has_format,
        "irrelevant": irrelevant,
        "answer": answer,
        "reward": clip(total, w.bounds()),
    }


@register_reward("ids_content", weights=IdsContentWeights, components=ids_content_components)
def ids_content_reward(
    completion: str, example: dict[str, Any], weights: IdsContentWeights | None = None
) -> float:
    """R_ID+C (see the module docstring); range ``[-0.3, 2.1]`` with the default weights."""
    return ids_content_components(completion, example, weights)["reward"]
