"""SQuAD-style answer normalisation and the QA scorers: SubEM, EM and token F1.

Normalisation follows the SQuAD v1.1 evaluation script (Rajpurkar et al., 2016): lower-case,
remove punctuation, remove the articles "a", "an", "the", collapse whitespace. SubEM
(substring exact match, as in HELMET, Yen et al., 2024) is 1 when a normalised gold answer occurs
inside the normalised prediction. Every scorer takes the maximum over the gold answers.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation) | {"‘", "’", "“", "”", "–", "—"}


def normalize_answer(text: str) -> str:
    """Lower-case, strip punctuation and articles, and collapse whitespace (SQuAD style)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals a normalised gold answer, else 0.0."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(a) for a in answers))


def substring_exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when a (non-empty) normalised gold answer occurs in the normalised prediction."""
    pred = f" {normalize_answer(prediction)} "
    for answer in answers:
        gold = normalize_answer(answer)
        if gold and f" {gold} " in pred:
            return 1.0
    return 0.0


def _f1(prediction: str, answer: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(answer).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    """Best token-level F1 between the prediction and any gold answer (SQuAD style)."""
    return max((_f1(prediction, a) for a in answers), default=0.0)


Scorer = Callable[[str, Sequence[str]], float]
QA_SCORERS: dict[str, Scorer] = {
    "subem": substring_exact_match,
    "em": exact_match,
    "f1": token_f1,
}


def score_qa(prediction: str, answers: Sequence[str]) -> dict[str, float]:
    """All QA scores of one prediction: ``{"subem": .., "em": .., "f1": ..}``."""
    return {name: fn(prediction, answers) for name, fn in QA_SCORERS.items()}
