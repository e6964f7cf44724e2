"""Lay out one training prompt: gold at a stratified depth, hard negatives up to a token budget.

The stored ``prompt`` is the user message without its variant instruction,
``"<[DOC i] documents>\\n\\nQuestion: <question>"``; :func:`user_message` puts the instruction of
a target format (:data:`longctx.train.targets.INSTRUCTIONS`) in front, so SFT and GRPO read the
same records for every variant and apply the chat template themselves. The budget holds for the
chat-templated prompt of *every* variant (the longest instruction decides).

Gold depth is stratified as in needle-in-a-haystack and "Lost in the Middle" (Liu et al., 2023):
examples are given the depth bins ``[0, 0.2), ..., [0.8, 1.0]`` round-robin and the first gold
document goes to a position whose relative depth ``(i - 1) / (n - 1)`` falls in its bin; the
other gold documents go to random later positions, negatives fill the rest in shuffled order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from longctx.data.context import BuiltContext, TokenCounter, render_document, render_documents
from longctx.data.example import Document
from longctx.eval.prompts import QATemplate, render_qa_prompt
from longctx.train.targets import INSTRUCTIONS, TARGET_FORMATS

N_BINS = 5
PROMPT_TEMPLATE = "{context}\n\nQuestion: {question}"


def user_message(prompt: str, target_format: str) -> str:
    """The user turn of a variant: its instruction, a blank line, then the stored prompt."""
    return f"{INSTRUCTIONS[target_format]}\n\n{prompt}"


def training_template(target_format: str) -> QATemplate:
    """The :class:`QATemplate` of a variant (no pre-filled answer prefix: targets carry it)."""
    user = user_message(PROMPT_TEMPLATE, target_format)
    return QATemplate(with_context=user, without_context=user, answer_prefix="")


def bin_bounds(index: int) -> tuple[float, float]:
    """``(low, high)`` of depth bin ``index`` (the last bin includes 1.0)."""
    return index / N_BINS, (index + 1) / N_BINS


def depth_bin(depth: float) -> int:
    """The bin of a relative depth in [0, 1]."""
    return min(int(depth * N_BINS), N_BINS - 1)


class PromptCounter:
    """Exact prompt token counts (chat template included) and cached per-document costs."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.docs = TokenCounter(tokenizer)
        self.templates = {f: training_template(f) for f in TARGET_FORMATS}
        longest = max(INSTRUCTIONS.values(), key=self.docs.count)
        self.longest = next(f for f in TARGET_FORMATS if INSTRUCTIONS[f] == longest)

    def count(self, question: str, context: str, formats: Sequence[str] | None = None) -> int:
        """Largest token count of the chat-templated prompt over ``formats`` (default: longest)."""
        counts = []
        for fmt in formats or (self.longest,):
            text = render_qa_prompt(self.tokenizer, question, context, self.templates[fmt]).text
            counts.append(self.docs.count(text, cache=False))
        return max(counts)

    def cost(self, doc: Document) -> int:
        """Estimated tokens a document adds: its rendered ``[DOC i]`` block and the separator."""
        return self.docs.count(render_document(100, doc)) + 1


def place(
    gold: Sequence[Document], negatives: Sequence[Document], bin_index: int, rng: random.Random
) -> list[Document]:
    """Order gold and negatives so that the first gold document's depth is in ``bin_index``.

    ``negatives`` are used in the given order (shuffle them first); the gold documents are
    shuffled here. When no position of the bin is possible (tiny contexts), the position whose
    depth is closest to the bin's middle is used.
    """
    gold = list(gold)
    rng.shuffle(gold)
    n, g = len(gold) + len(negatives), len(gold)
    lo, hi = bin_bounds(bin_index)

    def depth(p: int) -> float:
        return 0.0 if n <= 1 else p / (n - 1)

    starts = range(0, n - g + 1)
    inside = [p for p in starts if lo <= depth(p) < hi or (hi >= 1.0 and depth(p) == 1.0)]
    middle = (lo + hi) / 2
    first = rng.choice(inside) if inside else min(starts, key=lambda p: abs(depth(p) - middle))
    later = sorted(rng.sample(range(first + 1, n), g - 1))
    slots: list[Document | None] = [None] * n
    for slot, doc in zip([first, *later], gold, strict=True):
        slots[slot] = doc
    rest = iter(negatives)
    return [d if d is not None else next(rest) for d in slots]


def finish(docs: list[Document]) -> BuiltContext:
    """The :class:`BuiltContext` of documents in their final order."""
    positions = [i for i, d in enumerate(docs, start=1) if d.is_gold]
    depth = None
    if positions:
        depth = 0.0 if len(docs) <= 1 else (positions[0] - 1) / (len(docs) - 1)
    return BuiltContext(docs, render_documents(docs), positions, depth)


def fill(
    question: str,
    gold: Sequence[Document],
    ranked: Sequence[Document],
    counter: PromptCounter,
    budget: int,
) -> list[Document] | None:
    """The hardest negatives (in rank order) that fit the budget next to the gold documents.

    Returns:
        The chosen negatives (possibly none), or ``None`` when the gold documents alone do not
        fit. Costs are estimates; :func:`fit_layout` checks the exact count.
    """
    used = counter.count(question, render_documents(gold))
    if used > budget:
        return None
    chosen: list[Document] = []
    skipped = 0
    for doc in ranked:
        cost = counter.cost(doc)
        if used + cost <= budget:
            chosen.append(doc)
            used += cost
        else:
            skipped += 1
            if skipped > 50 or budget - used < 8:
                break
    return chosen


def fit_layout(
    question: str,
    gold: Sequence[Document],
    negatives: list[Document],
    bin_index: int,
    counter: PromptCounter,
    budget: int,
    seed: str,
) -> tuple[BuiltContext, int] | None:
    """Place the documents and drop the lowest-ranked negatives until every variant fits.

    Args:
        negatives: Chosen negatives in rank order (the last is dropped first).
        seed: Seed string of the example (shuffle and placement are redone identically).

    Returns:
        ``(context, exact prompt tokens of the longest variant)``, or ``None`` if nothing fits.
    """
    negatives = list(negatives)
    while True:
        rng = random.Random(seed)
        shuffled = list(negatives)
        rng.shuffle(shuffled)
        built = finish(place(gold, shuffled, bin_index, rng))
        n_tokens = counter.count(question, built.text, TARGET_FORMATS)
        if n_tokens <= budget:
            return built, n_tokens
        if not negatives:
            return None
        over = n_tokens - budget  # drop enough of the lowest-ranked negatives at once
        while negatives and over > 0:
            over -= counter.cost(negatives.pop())
