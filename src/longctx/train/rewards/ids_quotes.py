"""R_ID+Q, the ids-and-quotes reward: cite the gold documents, quote them verbatim, then answer.

Quotes are the ``"..."`` / ``“...”`` spans before the answer line (``parse_quotes``), each with
the ``[DOC i]`` that precedes it on its line. A quote is *valid* when it has between
``min_quote_tokens`` and ``max_quote_tokens`` whitespace tokens; a valid quote is *verified*
when its fuzzy similarity ``rapidfuzz.fuzz.partial_ratio / 100`` (texts lower-cased, without
punctuation) to a gold document reaches ``match_threshold``. Each quote is matched to at most one
gold document, the most similar one (greedy by similarity; with ``strict_attribution`` a quote
that names a document is only checked against that document, and fails when it is not gold); a
gold document can absorb several quotes, but coverage counts distinct documents. Formula::

    precision = verified quotes / all quotes (invalid ones included)
    coverage  = distinct gold documents with >= 1 verified quote / number of gold documents
    ids       = F1(cited, gold) if at least one quote is verified, else 0
    format    = 1 if there is an answer line and at least one quote, else 0
    overflow  = min(1, (n_tokens - token_budget) / token_budget) if n_tokens > token_budget else 0
    R_ID+Q = w_ids * ids + w_precision * precision + w_coverage * coverage + w_format * format
             - w_length * overflow + w_answer * R_AO

with ``n_tokens`` the whitespace tokens of the completion. Without gold documents, precision,
coverage and the ids gate count as satisfied when the completion quotes nothing.

Defaults (:class:`IdsQuotesWeights`): ``w_ids=0.5``, ``w_precision=0.25``, ``w_coverage=0.25``,
``w_format=0.1``, ``w_length=0.5``, ``w_answer=1.0``, ``min_quote_tokens=3``,
``max_quote_tokens=30``, ``match_threshold=0.8``, ``token_budget=200``,
``strict_attribution=True``.
Range: ``[-w_length, w_ids + w_precision + w_coverage + w_format + w_answer]`` = ``[-0.5, 2.1]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz

from longctx.train.parsing import parse_answer, parse_cited_ids, parse_quotes
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
class IdsQuotesWeights:
    """Weights and thresholds of R_ID+Q.

    Attributes:
        w_ids: Weight of the ids F1 (counted only when a quote is verified).
        w_precision: Weight of the share of quotes that are verified.
        w_coverage: Weight of the share of gold documents with a verified quote.
        w_format: Bonus for an answer line and at least one quote.
        w_length: Largest penalty for exceeding the token budget (reached at twice the budget).
        w_answer: Weight of the answer score R_AO.
        min_quote_tokens: Shorter quotes are invalid (a word or two matches any document).
        max_quote_tokens: Longer quotes are invalid.
        match_threshold: Smallest ``partial_ratio / 100`` of a verified quote.
        token_budget: Whitespace tokens of the completion before the length penalty starts.
        strict_attribution: Check a quote only against the document it names, when it names one.
    """

    w_ids: float = 0.5
    w_precision: float = 0.25
    w_coverage: float = 0.25
    w_format: float = 0.1
    w_length: float = 0.5
    w_answer: float = 1.0
    min_quote_tokens: int = 3
    max_quote_tokens: int = 30
    match_threshold: float = 0.8
    token_budget: int = 200
    strict_attribution: bool = True

    def bounds(self) -> tuple[float, float]:
        high = self.w_ids + self.w_precision + self.w_coverage + self.w_format + self.w_answer
        return bounds_of(-self.w_length, high)


def quote_similarity(quote: str, document: str) -> float:
    """Similarity in [0, 1] of a quote to its best-matching span of a document."""
    a, b = fuzzy_normal(quote), fuzzy_normal(document)
    if not a or not b:
        return 0.0
    return fuzz.partial_ratio(a, b) / 100.0


def match_quotes(
    quotes: list[tuple[int | None, str]],
    gold: list[int],
    docs: dict[int, str],
    weights: IdsQuotesWeights,
) -> list[int | None]:
    """The gold document each quote is verified against, or ``None`` for an unverified quote.

    Args:
        quotes: ``(doc_id or None, quote)`` pairs from :func:`parse_quotes`.
        gold: Gold ``[DOC i]`` numbers.
        docs: ``{DOC number: text}``.
        weights: Thresholds (quote length, similarity, attribution).

    Returns:
        One entry per quote.
    """
    matched: list[int | None] = []
    for doc_id, quote in quotes:
        n = len(quote.split())
        candidates = gold
        if weights.strict_attribution and doc_id is not None:
            candidates = [doc_id] if doc_id in gold else []
        best: int | None = None
        if weights.min_quote_tokens <= n <= weights.max_quote_tokens and candidates:
            sims = {g: quote_similarity(quote, docs.get(g, "")) for g in candidates}
            top = max(sims, key=lambda g: sims[g])
            best = top if sims[top] >= weights.match_threshold else None
        matched.append(best)
    return matched


def ids_quotes_components(
    completion: str, example: dict[str, Any], weights: IdsQuotesWeights | None = None
) -> dict[str, float]:
    """Components of R_ID+Q: ``ids_f1`` (gated), ``precision``, ``coverage``, ``format``,
    ``overflow``, ``answer`` and the total ``reward``."""
    w = resolve_weights(IdsQuotesWeights, "ids_quotes", example, weights)
    gold, docs = gold_ids(example), documents(example)
    quotes = parse_quotes(completion)
    matched = match_quotes(quotes, gold, docs, w)
    verified = [m for m in matched if m is not None]
    if gold:
        precision = len(verified) / len(quotes) if quotes else 0.0
        coverage = len(set(verified)) / len(gold)
        gate = bool(verified)
    else:
        precision = coverage = float(not quotes)
        gate = not quotes
    f1 = set_f1(parse_cited_ids(completion), gold) if gate else 0.0
    has_format = float(parse_answer(completion) is not None and (bool(quotes) or not gold))
    n_tokens = len(completion.split())
    budget = max(w.token_budget, 1)
    overflow = min(1.0, (n_tokens - budget) / budget) if n_tokens > budget else 0.0
    answer = answer_score(completion, example.get("answers") or [])
    total = (
        w.w_ids * f1
        + w.w_precision * precision
        + w.w_coverage * coverage
        + w.w_format * has_format
        - w.w_length * overflow
        + w.w_answer * answer
    )
    return {
        "ids_f1": f1,
        "precision": precision,
        "coverage": coverage,
        "format": has_format,
        "overflow": overflow,
        "answer": answer,
        "reward": clip(total, w.bounds()),
    }


@register_reward("ids_quotes", weights=IdsQuotesWeights, components=ids_quotes_components)
def ids_quotes_reward(
    completion: str, example: dict[str, Any], weights: IdsQuotesWeights | None = None
) -> float:
    """R_ID+Q (see the module docstring); range ``[-0.5, 2.1]`` with the default weights."""
    return ids_quotes_components(completion, example, weights)["reward"]
