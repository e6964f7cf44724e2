"""False-negative relabelling of retrieved negatives: fuzzy promotion, then an optional judge.

Retrieved hard negatives are sometimes positives in disguise: a near-copy of a gold passage (the
same fact in another article or revision), or a passage that states the answer. Training a model
to ignore them teaches it to ignore evidence (RocketQA, Qu et al., 2021, removes such false
negatives with a cross-encoder). Two stages:

1. **Fuzzy** (always): each negative gets a score in [0, 1],
   ``0.75 * max over gold passages g of mean(token_set_ratio(n, g), char-F1(n, g), ngram(n, g))
   + 0.25 * answer(n)``, where ``token_set_ratio`` is rapidfuzz's (÷100), char-F1 is the F1 of
   the character 4-gram multisets, ngram is the overlap coefficient of word 3-gram sets, and
   answer is the best rapidfuzz ``token_set_ratio`` of a gold answer against the passage (1 when
   every answer word occurs in it). Texts are SQuAD-normalised first. A negative scoring at least
   the threshold (0.6 by default) is *promoted*: it becomes gold with ``relabelled="fuzzy"``.
   The weights make gold similarity decisive: a near-copy of a gold passage is promoted even
   without the answer (the bridge passage of a multi-hop question never holds it), while an
   unrelated passage that merely mentions the answer is not.
2. **Judge** (when a judge is given): each promotion is shown to an LLM judge with the question,
   answer and gold passages. Confirmed ones stay gold (``relabelled="judge"``); rejected ones,
   and those the judge fails to grade, are *dropped* from the context rather than kept as
   negatives: the fuzzy stage found them too close to the evidence to be trusted as negatives,
   and the judge did not vouch for them as positives, so the safe choice is neither.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from rapidfuzz import fuzz

from longctx.data.example import Document
from longctx.eval.judge import Judge, parse_binary_scores
from longctx.eval.scoring import normalize_answer

GOLD_WEIGHT = 0.75
JUDGE_PROMPT = """You are checking training data for question answering over documents.

A passage retrieved for the question was flagged as possibly relevant: it resembles a gold \
passage or mentions the answer. Decide whether it is a real positive, that is, whether it \
contains information needed to answer the question with the given answer, as the gold \
passages do.

[Question]
{question}

[Answer]
{answer}

[Gold passages]
{gold}

[Candidate passage]
{candidate}

Reply with one short sentence of justification, then JSON on its own line: \
{{"relevant": 1}} if the candidate is a positive, {{"relevant": 0}} if it is not."""


def _char_ngrams(text: str, n: int = 4) -> Counter[str]:
    return Counter(text[i : i + n] for i in range(max(len(text) - n + 1, 1)))


def char_f1(a: str, b: str, n: int = 4) -> float:
    """F1 of the character ``n``-gram multisets of two (normalised) texts."""
    if not a or not b:
        return 0.0
    ga, gb = _char_ngrams(a, n), _char_ngrams(b, n)
    common = sum((ga & gb).values())
    if common == 0:
        return 0.0
    precision, recall = common / sum(ga.values()), common / sum(gb.values())
    return 2 * precision * recall / (precision + recall)


def ngram_overlap(a: str, b: str, n: int = 3) -> float:
    """Overlap coefficient ``|A ∩ B| / min(|A|, |B|)`` of the word ``n``-gram sets."""
    wa, wb = a.split(), b.split()
    sa = {tuple(wa[i : i + n]) for i in range(max(len(wa) - n + 1, 1))}
    sb = {tuple(wb[i : i + n]) for i in range(max(len(wb) - n + 1, 1))}
    if not sa or not sb:
        return 0.0
    return len(sa & sb) / min(len(sa), len(sb))


def gold_similarity(text: str, gold: str) -> float:
    """Mean of token-set ratio, character F1 and word 3-gram overlap of two normalised texts."""
    ratio = fuzz.token_set_ratio(text, gold) / 100
    return (ratio + char_f1(text, gold) + ngram_overlap(text, gold)) / 3


def fuzzy_score(text: str, gold_texts: Sequence[str], answers: Sequence[str]) -> float:
    """The stage-1 score of a negative (see the module docstring)."""
    norm = normalize_answer(text)
    sim = max((gold_similarity(norm, normalize_answer(g)) for g in gold_texts), default=0.0)
    answer = max(
        (fuzz.token_set_ratio(normalize_answer(a), norm) / 100 for a in answers if a.strip()),
        default=0.0,
    )
    return GOLD_WEIGHT * sim + (1 - GOLD_WEIGHT) * answer


@dataclass
class Relabelled:
    """The negatives of one example after relabelling.

    Attributes:
        negatives: Those that stay negatives.
        promoted: Those that became gold (``is_gold=True``).
        flags: ``{doc id: "fuzzy" | "judge"}`` for each promoted document.
        counts: ``promoted``, ``confirmed``, ``rejected``, ``judge_errors``.
    """

    negatives: list[Document]
    promoted: list[Document] = field(default_factory=list)
    flags: dict[str, str] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)


def judge_prompt(
    question: str, answers: Sequence[str], gold: Sequence[Document], doc: Document
) -> str:
    """The stage-2 prompt for one promoted passage."""
    gold_text = "\n\n".join(f"- {g.title + ': ' if g.title else ''}{g.text.strip()}" for g in gold)
    cand = f"{doc.title + ': ' if doc.title else ''}{doc.text.strip()}"
    answer = " / ".join(answers)
    return JUDGE_PROMPT.format(question=question, answer=answer, gold=gold_text, candidate=cand)


def relabel(
    question: str,
    answers: Sequence[str],
    gold: Sequence[Document],
    negatives: Sequence[Document],
    threshold: float = 0.6,
    judge: Judge | None = None,
) -> Relabelled:
    """Promote false negatives (stage 1) and let a judge confirm or reject them (stage 2).

    Args:
        question: The question (for the judge).
        answers: Gold answers.
        gold: The gold passages.
        negatives: The negatives to check.
        threshold: Fuzzy score from which a negative is promoted.
        judge: Optional stage-2 judge; rejected or ungraded promotions are dropped.

    Returns:
        The :class:`Relabelled` split of ``negatives``.
    """
    gold_texts = [g.text for g in gold]
    result = Relabelled(negatives=[])
    for doc in negatives:
        if fuzzy_score(doc.text, gold_texts, answers) < threshold:
            result.negatives.append(doc)
            continue
        result.counts["promoted"] += 1
        if judge is not None:
            verdict = judge.grade(
                judge_prompt(question, answers, gold, doc),
                lambda text: parse_binary_scores(text, ["relevant"]),
            )
            if verdict.parsed is None:
                result.counts["judge_errors"] += 1
                continue
            if not verdict.parsed["relevant"]:
                result.counts["rejected"] += 1
                continue
            result.counts["confirmed"] += 1
        result.promoted.append(replace(doc, is_gold=True))
        result.flags[doc.id] = "judge" if judge is not None else "fuzzy"
    return result
