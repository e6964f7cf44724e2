"""Target formats of the training variants, in one place for SFT and GRPO.

Each variant asks the model for a different output before the final answer line
``"The answer is: X"`` (X = the first gold answer):

- ``answer``: the answer line only.
- ``ids``: ``"Relevant documents: [DOC 3], [DOC 7]"``, then the answer line.
- ``ids_content``: the ids line, each gold document reproduced in full as ``[DOC i] <text>``,
  then the answer line.
- ``ids_quotes``: the ids line, one short verbatim quote per gold document as ``[DOC i] "quote"``,
  then the answer line.
- ``reasoning``: numbered steps ``1. [DOC i] states that "quote".`` ... ``N. Therefore, the answer
  is X.``, then the answer line.

A quote is one sentence of the gold document, at most ``quote_max_tokens`` whitespace tokens: the
sentence that contains a gold answer if there is one, else the sentence sharing most words with
the question; a longer sentence is cut to the window of that many tokens that contains the answer
(or overlaps the question most). The parsers of :mod:`longctx.train.parsing` read every format
back; they are re-exported here.
"""

from __future__ import annotations

import random
import re
from typing import Any

from longctx.data.context import BuiltContext
from longctx.data.example import Example
from longctx.eval.scoring import normalize_answer, substring_exact_match
from longctx.train.parsing import (
    ANSWER_PREFIX,
    parse_answer,
    parse_cited_ids,
    parse_content_blocks,
    parse_quotes,
    split_answer,
)

__all__ = [
    "ANSWER_PREFIX",
    "INSTRUCTIONS",
    "TARGET_FORMATS",
    "best_quote",
    "make_targets",
    "parse_answer",
    "parse_cited_ids",
    "parse_content_blocks",
    "parse_quotes",
    "reward_example",
    "split_answer",
]

TARGET_FORMATS = ("answer", "ids", "ids_content", "ids_quotes", "reasoning")
IDS_PREFIX = "Relevant documents:"

_FINAL = f'Finish with a last line "{ANSWER_PREFIX} <answer>", giving the answer in a few words.'
INSTRUCTIONS: dict[str, str] = {
    "answer": f"Answer the question using the documents. {_FINAL}",
    "ids": (
        "First list the documents needed to answer the question, as "
        f'"{IDS_PREFIX} [DOC i], [DOC j]". {_FINAL}'
    ),
    "ids_content": (
        "First list the documents needed to answer the question, as "
        f'"{IDS_PREFIX} [DOC i], [DOC j]". Then copy each of these documents in full, each on '
        f'its own line starting with its "[DOC i]" tag. {_FINAL}'
    ),
    "ids_quotes": (
        "First list the documents needed to answer the question, as "
        f'"{IDS_PREFIX} [DOC i], [DOC j]". Then, for each of these documents, quote on its own '
        "line the passage that supports the answer, verbatim and at most 30 words, as "
        f'[DOC i] "quote". {_FINAL}'
    ),
    "reasoning": (
        "Reason step by step in numbered steps (1., 2., ...). In each step, cite the document "
        "you use as [DOC i] and quote it verbatim in double quotes. End the steps with "
        f'"Therefore, the answer is ...". {_FINAL}'
    ),
}

_SENTENCE = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


def _sentences(text: str) -> list[str]:
    """Split a document into sentences (a light rule: end punctuation, space, capital/digit)."""
    return [s.strip() for s in _SENTENCE.split(" ".join(text.split())) if s.strip()]


def _overlap(text: str, words: set[str]) -> int:
    return len(set(normalize_answer(text).split()) & words)


def best_quote(
    text: str,
    answers: list[str],
    question: str = "",
    max_tokens: int = 30,
    rng: random.Random | None = None,
) -> str:
    """A short verbatim quote of ``text`` that supports the answer.

    Args:
        text: The document text.
        answers: Gold answers; a sentence containing one (SubEM) is preferred.
        question: The question; otherwise the sentence sharing most words with it is chosen.
        max_tokens: Maximum whitespace tokens of the quote.
        rng: Breaks ties between equally good sentences (the first one without it).

    Returns:
        The quote (whitespace collapsed, double quotes turned into single quotes and trailing
        ``.,;:`` removed so it can sit inside ``"..."``); ``""`` for an empty document.
    """
    question_words = set(normalize_answer(question).split())

    def score(span: str) -> tuple[float, int]:
        return substring_exact_match(span, answers), _overlap(span, question_words)

    sentences = _sentences(text)
    if not sentences:
        return ""
    scores = [score(s) for s in sentences]
    top = max(scores)
    best = [s for s, sc in zip(sentences, scores, strict=True) if sc == top]
    sentence = rng.choice(best) if rng is not None and len(best) > 1 else best[0]
    tokens = sentence.split()
    if len(tokens) > max_tokens:
        windows = [tokens[i : i + max_tokens] for i in range(len(tokens) - max_tokens + 1)]
        sentence = " ".join(max(windows, key=lambda w: score(" ".join(w))))
    return sentence.replace('"', "'").rstrip(".,;:").strip()


def _ids_line(gold_ids: list[int]) -> str:
    cited = ", ".join(f"[DOC {i}]" for i in gold_ids)
    return f"{IDS_PREFIX} {cited or 'none'}"


def make_targets(
    example: Example, context: BuiltContext, quote_max_tokens: int = 30, seed: int = 0
) -> dict[str, str]:
    """The target output of every training variant for one prompt.

    Args:
        example: The example (its first answer is the target answer).
        context: The built context of the prompt; its ``gold_positions`` are the ``[DOC i]``
            numbers to cite, in context order.
        quote_max_tokens: Maximum whitespace tokens of each quote (``ids_quotes``, ``reasoning``).
        seed: Breaks ties between equally good quote sentences (with the example id).

    Returns:
        ``{format: target}`` for each of :data:`TARGET_FORMATS`.

    Raises:
        ValueError: When the example has no answer.
    """
    if not example.answers:
        raise ValueError(f"example {example.id!r} has no answer to build targets from")
    answer = example.answers[0].strip()
    answer_line = f"{ANSWER_PREFIX} {answer}"
    gold = [(i, context.documents[i - 1]) for i in context.gold_positions]
    rng = random.Random(f"{seed}:{example.id}")
    quotes = [
        (i, best_quote(doc.text, example.answers, example.question, quote_max_tokens, rng))
        for i, doc in gold
    ]
    ids_line = _ids_line([i for i, _ in gold])
    content = [f"[DOC {i}] {' '.join(doc.text.split())}" for i, doc in gold]
    quoted = [f'[DOC {i}] "{q}"' for i, q in quotes if q]
    steps = [f'{n}. [DOC {i}] states that "{q}".' for n, (i, q) in enumerate(quotes, 1) if q]
    steps.append(f"{len(steps) + 1}. Therefore, the answer is {answer.rstrip('.')}.")
    return {
        "answer": answer_line,
        "ids": f"{ids_line}\n{answer_line}",
        "ids_content": "\n".join([ids_line, *content, answer_line]),
        "ids_quotes": "\n".join([ids_line, *quoted, answer_line]),
        "reasoning": "\n".join([*steps, answer_line]),
    }


def reward_example(example: Example, context: BuiltContext) -> dict[str, Any]:
    """The fields the rewards of :mod:`longctx.train.rewards` read, for one prompt.

    Args:
        example: The example.
        context: The built context of the prompt.

    Returns:
        ``{"question", "answers", "gold_ids", "documents"}`` with ``documents`` mapping each
        ``[DOC i]`` number to the document text (JSON keys are strings; rewards accept both).
    """
    return {
        "question": example.question,
        "answers": list(example.answers),
        "gold_ids": list(context.gold_positions),
        "documents": {i: doc.text for i, doc in enumerate(context.documents, start=1)},
    }
