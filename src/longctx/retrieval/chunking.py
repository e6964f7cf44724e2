"""Split long documents into retrieval units: token-bounded chunks or 100-word passages.

:func:`chunk_by_tokens` packs whole sentences into chunks of at most ``max_tokens`` tokens of the
model's tokenizer, as LongRAG (Jiang et al., 2024) builds long retrieval units (its default,
about 4k tokens, groups documents; here a single long document is cut, 2048 tokens by default).
A sentence longer than the limit is cut between words, and a "word" longer than the limit (a URL,
a table row) between characters. Chunks keep their whitespace, so ``"".join(chunks) == text``.

:func:`split_passages` makes the disjoint 100-word passages of DPR (Karpukhin et al., 2020).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from longctx.data.context import TokenCounter
from longctx.data.example import Document

# A sentence ends after terminal punctuation (and closing quotes/brackets) followed by
# whitespace, or at a line break; the whitespace that follows starts the next sentence.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s)|[^\s](?=[ \t]*\r?\n)")
_WORD = re.compile(r"\s*\S+")


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``, each with the whitespace before it; they join back to ``text``."""
    pieces, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        if match.end() > start:
            pieces.append(text[start : match.end()])
            start = match.end()
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def _split_words(text: str) -> list[str]:
    """Words of ``text`` with their leading whitespace (trailing whitespace joins the last)."""
    words = _WORD.findall(text)
    tail = text[sum(len(w) for w in words) :]
    if not words:
        return [text] if text else []
    words[-1] += tail
    return words


def _count_fn(tokenizer: Any) -> Callable[[str], int]:
    if isinstance(tokenizer, TokenCounter):
        return tokenizer.count
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False))


def _count_many(tokenizer: Any, texts: list[str]) -> list[int]:
    """Token counts of many texts, batched through a fast tokenizer when possible."""
    if not texts:
        return []
    if not isinstance(tokenizer, TokenCounter) and callable(tokenizer):
        try:
            ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
            return [len(x) for x in ids]
        except (TypeError, KeyError):
            pass
    count = _count_fn(tokenizer)
    return [count(t) for t in texts]


def _split_chars(text: str, max_tokens: int, count: Callable[[str], int]) -> list[str]:
    """Cut a text with no usable word break into the longest prefixes within the limit."""
    pieces = []
    while text:
        if count(text) <= max_tokens:
            pieces.append(text)
            break
        lo, hi = 1, len(text) - 1  # the longest prefix known to fit is text[:lo] (or 1 char)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count(text[:mid]) <= max_tokens:
                lo = mid
            else:
                hi = mid - 1
        pieces.append(text[:lo])
        text = text[lo:]
    return pieces


def _units(text: str, max_tokens: int, tokenizer: Any) -> tuple[list[str], list[int]]:
    """Sentences, with those over the limit cut into words (and words into characters)."""
    count = _count_fn(tokenizer)
    units: list[str] = []
    sentences = split_sentences(text)
    for sentence, n in zip(sentences, _count_many(tokenizer, sentences), strict=True):
        if n <= max_tokens:
            units.append(sentence)
            continue
        for word in _split_words(sentence):
            units.extend(
                [word] if count(word) <= max_tokens else _split_chars(word, max_tokens, count)
            )
    return units, _count_many(tokenizer, units)


def chunk_by_tokens(text: str, tokenizer: Any, max_tokens: int = 2048) -> list[str]:
    """Split ``text`` into chunks of at most ``max_tokens`` tokens, at sentence ends if possible.

    Sentences are packed greedily in order; each chunk's exact token count is checked, and
    sentences are moved to the next chunk until it fits (token counts of parts do not add up
    exactly). Whitespace stays with the text, so ``"".join(chunk_by_tokens(t, ...)) == t``.

    Args:
        text: The document.
        tokenizer: The model's tokenizer (anything with ``encode(text, add_special_tokens=...)``)
            or a :class:`~longctx.data.context.TokenCounter`.
        max_tokens: Token limit per chunk (special tokens not counted).

    Returns:
        The chunks in order; ``[]`` for an empty text. A single character that alone exceeds a
        tiny limit (e.g. an emoji of 3 byte tokens with ``max_tokens=2``) is kept as one chunk.

    Raises:
        ValueError: ``max_tokens < 1``.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if not text:
        return []
    count = _count_fn(tokenizer)
    if count(text) <= max_tokens:
        return [text]
    units, sizes = _units(text, max_tokens, tokenizer)
    chunks: list[str] = []
    i = 0
    while i < len(units):
        j, used = i + 1, sizes[i]
        while j < len(units) and used + sizes[j] <= max_tokens:
            used += sizes[j]
            j += 1
        while j - i > 1 and count("".join(units[i:j])) > max_tokens:
            j -= 1
        chunks.append("".join(units[i:j]))
        i = j
    return chunks


def split_passages(text: str, words: int = 100) -> list[str]:
    """Disjoint passages of ``words`` whitespace-separated words (DPR, Karpukhin et al., 2020).

    ``" ".join(split_passages(t))`` equals ``" ".join(t.split())``; the last passage may be
    shorter.

    Raises:
        ValueError: ``words < 1``.
    """
    if words < 1:
        raise ValueError(f"words must be >= 1, got {words}")
    tokens = text.split()
    return [" ".join(tokens[i : i + words]) for i in range(0, len(tokens), words)]


def chunk_documents(
    docs: Sequence[Document], tokenizer: Any, max_tokens: int = 2048
) -> list[Document]:
    """Chunk each document with :func:`chunk_by_tokens`.

    Chunk ``k`` (from 0) of document ``d`` gets id ``f"{d.id}#{k}"``, ``d``'s title and gold flag.
    A document with empty text gives one empty chunk, so no document disappears.
    """
    out: list[Document] = []
    for doc in docs:
        chunks = chunk_by_tokens(doc.text, tokenizer, max_tokens) or [doc.text]
        out.extend(
            Document(id=f"{doc.id}#{k}", title=doc.title, text=chunk, is_gold=doc.is_gold)
            for k, chunk in enumerate(chunks)
        )
    return out
