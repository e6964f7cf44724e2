"""Build the document context of a prompt: gold placement, distractor filling, token budgets.

Documents are rendered as ``[DOC i] (Title: ...) text`` with ``i`` the 1-based position in the
final context, the format of in-context-retrieval training and evaluation. Gold documents go at
a chosen depth (0 = first, 1 = last; as in needle-in-a-haystack and "Lost in the Middle", Liu et
al., 2023) or everything is shuffled with a seed; distractors fill the context up to a token budget
counted with the model's tokenizer, HELMET-style (Yen et al., 2024): the example's own distractors
first (the hardest negatives), then documents from a shared pool of other examples.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from longctx.data.example import Document, Example

MODES = ("full", "gold", "none")
_LENGTH = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$")


def parse_length(text: str | int) -> int:
    """Parse ``"1k"`` -> 1024, ``"128k"`` -> 131072, ``"1m"`` -> 1048576, ``"1500"`` -> 1500."""
    if isinstance(text, int):
        return text
    match = _LENGTH.match(str(text))
    if not match:
        raise ValueError(f"bad length {text!r}: use a token count like 512, 1k, 32k, 1m")
    value, unit = float(match.group(1)), match.group(2).lower()
    return int(value * {"": 1, "k": 1024, "m": 1024 * 1024}[unit])


def parse_lengths(text: str) -> list[int]:
    """Parse a comma-separated list of lengths (``"1k,2k,4k"``)."""
    return [parse_length(part) for part in str(text).split(",") if part.strip()]


def format_length(tokens: int) -> str:
    """Inverse of :func:`parse_length` for display: 1024 -> ``"1k"``, 1500 -> ``"1500"``."""
    if tokens and tokens % (1024 * 1024) == 0:
        return f"{tokens // (1024 * 1024)}m"
    if tokens and tokens % 1024 == 0:
        return f"{tokens // 1024}k"
    return str(tokens)


def render_document(position: int, doc: Document) -> str:
    """``[DOC i] (Title: t) text`` (the title part is left out when the document has none)."""
    title = f" (Title: {doc.title})" if doc.title else ""
    return f"[DOC {position}]{title} {doc.text.strip()}"


def render_documents(docs: Sequence[Document]) -> str:
    """Render documents numbered from 1, separated by blank lines."""
    return "\n\n".join(render_document(i, d) for i, d in enumerate(docs, start=1))


@dataclass
class BuiltContext:
    """The documents chosen for one prompt, in order, and where the gold ones ended up.

    Attributes:
        documents: The documents in context order (``[DOC 1]`` is ``documents[0]``).
        text: The rendered context.
        gold_positions: 1-based ``[DOC i]`` numbers of the gold documents.
        depth: Relative depth of the first gold document (0..1), ``None`` without gold documents.
    """

    documents: list[Document]
    text: str
    gold_positions: list[int] = field(default_factory=list)
    depth: float | None = None

    @property
    def doc_ids(self) -> list[str]:
        return [d.id for d in self.documents]


class TokenCounter:
    """Counts tokens with a tokenizer, remembering the count of each text it has seen.

    Filling thousands of contexts from one distractor pool tokenises each pool document once.
    """

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self._cache: dict[str, int] = {}

    def count(self, text: str, cache: bool = True) -> int:
        """Number of tokens of ``text`` without special tokens."""
        if cache and text in self._cache:
            return self._cache[text]
        n = len(self.tokenizer.encode(text, add_special_tokens=False))
        if cache:
            self._cache[text] = n
        return n


def _depth_of(positions: list[int], n: int) -> float | None:
    if not positions:
        return None
    return 0.0 if n <= 1 else (positions[0] - 1) / (n - 1)


def _finish(docs: list[Document]) -> BuiltContext:
    positions = [i for i, d in enumerate(docs, start=1) if d.is_gold]
    return BuiltContext(docs, render_documents(docs), positions, _depth_of(positions, len(docs)))


def _place(
    gold: list[Document], others: list[Document], depth: float | None, rng: random.Random
) -> list[Document]:
    if depth is None:
        docs = gold + others
        rng.shuffle(docs)
        return docs
    if not 0.0 <= depth <= 1.0:
        raise ValueError(f"depth must be in [0, 1], got {depth}")
    at = round(depth * len(others))
    return others[:at] + gold + others[at:]


def build_context(
    example: Example,
    mode: str,
    tokenizer: Any = None,
    budget: int | None = None,
    depth: float | None = None,
    seed: int = 0,
    pool: Sequence[Document] = (),
    max_documents: int | None = None,
) -> BuiltContext:
    """Choose and order the documents of one prompt.

    Args:
        example: The example; its gold documents are always kept in ``full`` and ``gold`` modes.
        mode: ``"full"`` (gold + distractors up to ``budget``), ``"gold"`` (gold only), or
            ``"none"`` (no context).
        tokenizer: Counts tokens of rendered documents (needed with ``budget``); a tokenizer or a
            :class:`TokenCounter` (reused across calls, it caches per-document counts).
        budget: Maximum context tokens in ``full`` mode; ``None`` keeps every document of the
            example and no pool document.
        depth: Gold position (0..1) among the distractors; ``None`` shuffles everything.
        seed: Seed for shuffling; with the example id it fixes the order, so the same seed gives
            the same context for the same example and budget.
        pool: Extra distractors (e.g. other examples' documents) used after the example's own.
            Documents whose title or text equals one of the example's are skipped.
        max_documents: Stop at this many documents (HELMET's fixed passage counts); the budget
            still bounds the context.

    Returns:
        The :class:`BuiltContext`.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    rng = random.Random(f"{seed}:{example.id}:{budget}")
    gold = list(example.gold_documents)
    if mode == "none":
        return BuiltContext([], "")
    if mode == "gold":
        return _finish(_place(gold, [], depth, rng))
    own = list(example.distractors)
    rng.shuffle(own)
    if budget is None:
        return _finish(_place(gold, own, depth, rng))
    if tokenizer is None:
        raise ValueError("a tokenizer is needed to fill a context to a token budget")
    seen = {d.title for d in example.documents if d.title} | {d.text for d in example.documents}
    # Pool documents are distractors here, whatever they were for their own example.
    extra = [replace(d, is_gold=False) for d in pool if d.title not in seen and d.text not in seen]
    rng.shuffle(extra)

    counter = tokenizer if isinstance(tokenizer, TokenCounter) else TokenCounter(tokenizer)

    def cost(doc: Document) -> int:
        # The "[DOC i]" tag is counted with the body; +1 for the blank-line separator.
        return counter.count(render_document(10, doc)) + 1

    used = sum(cost(d) for d in gold)
    chosen: list[Document] = []
    left_out: list[Document] = []
    room = max_documents - len(gold) if max_documents is not None else None
    for doc in own + extra:
        if room is not None and len(chosen) >= room:
            break
        c = cost(doc)
        if used + c <= budget:
            chosen.append(doc)
            used += c
        else:
            left_out.append(doc)
            if len(left_out) > 50 or budget - used < 4:
                break

    def place_rng() -> random.Random:  # the same placement each time the list is rebuilt
        return random.Random(f"{seed}:{example.id}:{budget}:place")

    # Token counts of parts do not add up exactly: measure the whole, then close the gap with
    # the head of one more distractor, or shorten the last one when over.
    built = _finish(_place(gold, chosen, depth, place_rng()))
    for _ in range(4):
        gap = budget - counter.count(built.text, cache=False)
        if gap < 0 and chosen:
            last = chosen.pop()
            head = _head(last, counter.count(last.text) + gap - 2, counter)
        elif gap >= 6 and left_out and room is None:
            spare = left_out.pop(0)
            head = _head(spare, gap - cost(replace(spare, text="")) - 1, counter)
        else:
            break
        if head is not None:
            chosen.append(head)
        built = _finish(_place(gold, chosen, depth, place_rng()))
    while chosen and counter.count(built.text, cache=False) > budget:
        chosen.pop()
        built = _finish(_place(gold, chosen, depth, place_rng()))
    return built


def _head(doc: Document, tokens: int, counter: TokenCounter) -> Document | None:
    """The document cut to its first ``tokens`` tokens at a word boundary (None if too short)."""
    if tokens < 3:
        return None
    ids = counter.tokenizer.encode(doc.text.strip(), add_special_tokens=False)[:tokens]
    text = counter.tokenizer.decode(ids)
    cut = text.rfind(" ")
    text = text[:cut] if cut > 0 and len(ids) == tokens else text
    return replace(doc, text=text.rstrip() + " ...")


def truncate_middle(token_ids: list[int], max_tokens: int) -> list[int]:
    """Keep the first and last ``max_tokens // 2`` tokens (the HELMET / LongBench policy)."""
    if len(token_ids) <= max_tokens:
        return list(token_ids)
    if max_tokens <= 0:
        return []
    head = max_tokens // 2
    tail = max_tokens - head
    return list(token_ids[:head]) + list(token_ids[len(token_ids) - tail :])
