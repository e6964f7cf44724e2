"""The RAG baseline: retrieve an example's best documents and fill a token budget with them.

The example's own documents (or, with ``chunk_tokens``, their token-bounded chunks, as for the
single long documents of LongBench v2 and Loong; LongRAG, Jiang et al., 2024) are ranked against
the question by BM25 (Robertson & Zaragoza, 2009), a dense bi-encoder (Karpukhin et al., 2020) or
their reciprocal-rank fusion (Cormack et al., 2009). Documents are then taken in rank order,
``[DOC 1]`` being the best, while the rendered context stays within the budget: a document that
does not fit is skipped and the next (possibly shorter) one is tried. The final text is counted
again and never exceeds the budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from longctx.data.context import BuiltContext, TokenCounter, render_document, render_documents
from longctx.data.example import Document, Example
from longctx.retrieval.base import make_retriever
from longctx.retrieval.chunking import chunk_documents
from longctx.retrieval.store import get_or_build


@dataclass
class RagContext(BuiltContext):
    """A :class:`BuiltContext` chosen by a retriever.

    Attributes:
        retrieved_ids: Ids of the documents kept, in rank order (= context order).
        scores: Retriever score of each kept document (parallel to ``retrieved_ids``).
        retriever: The retriever name.
        pool_size: How many documents (or chunks) were ranked.
    """

    retrieved_ids: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    retriever: str = ""
    pool_size: int = 0


def retrieval_text(doc: Document) -> str:
    """The text a document is indexed by: its title (when it has one) and its body."""
    return f"{doc.title}\n{doc.text}" if doc.title else doc.text


def rag_pool_for(
    example: Example,
    chunk_tokens: int | None = None,
    tokenizer: Any = None,
    pool: Sequence[Document] = (),
) -> list[Document]:
    """The documents a RAG baseline ranks for ``example``, in source order.

    Args:
        example: The example; its own documents come first.
        chunk_tokens: When given, every document is cut into chunks of at most this many tokens
            (ids ``"<doc id>#<k>"``), the retrieval units for single long documents.
        tokenizer: Tokenizer (or :class:`TokenCounter`) for chunking.
        pool: Extra candidates from other examples (e.g. NQ, whose examples hold only their gold
            passage). Those sharing a title or text with the example's documents are skipped;
            the rest get ids ``"pool<i>:<id>"`` and are never gold.

    Raises:
        ValueError: ``chunk_tokens`` without a tokenizer.
    """
    docs = list(example.documents)
    seen = {d.title for d in docs if d.title} | {d.text for d in docs}
    docs += [
        Document(id=f"pool{i}:{d.id}", title=d.title, text=d.text, is_gold=False)
        for i, d in enumerate(pool)
        if d.title not in seen and d.text not in seen
    ]
    if chunk_tokens is not None:
        if tokenizer is None:
            raise ValueError("chunk_tokens needs a tokenizer")
        docs = chunk_documents(docs, tokenizer, chunk_tokens)
    return docs


def _finish(
    docs: list[Document], retrieved: list[tuple[Document, float]], name: str, pool_size: int
) -> RagContext:
    positions = [i for i, d in enumerate(docs, start=1) if d.is_gold]
    depth = (
        None if not positions else (0.0 if len(docs) <= 1 else (positions[0] - 1) / (len(docs) - 1))
    )
    return RagContext(
        docs,
        render_documents(docs),
        positions,
        depth,
        retrieved_ids=[d.id for d, _ in retrieved],
        scores=[s for _, s in retrieved],
        retriever=name,
        pool_size=pool_size,
    )


def build_rag_context(
    example: Example,
    retriever_name: str,
    budget: int,
    counter: TokenCounter | Any,
    chunk_tokens: int | None = None,
    tokenizer: Any = None,
    seed: int = 0,
    retriever_kwargs: dict[str, Any] | None = None,
    pool: Sequence[Document] = (),
    index_dir: str | Path | None = None,
) -> RagContext:
    """Fill a context of at most ``budget`` tokens with the documents a retriever ranks best.

    Args:
        example: The example; its ``question`` is the query.
        retriever_name: ``"bm25"``, ``"dense"`` or ``"hybrid"``.
        budget: Maximum tokens of the rendered context (``counter.count(text) <= budget``).
        counter: A :class:`TokenCounter` (or a tokenizer, wrapped in one).
        chunk_tokens: Rank chunks of at most this many tokens instead of whole documents.
        tokenizer: Tokenizer for chunking; defaults to the counter's.
        seed: Accepted for symmetry with :func:`longctx.data.context.build_context`; retrieval
            is deterministic (ties go to the earlier document), so it changes nothing.
        retriever_kwargs: Retriever parameters (e.g. ``{"model": path}`` for dense).
        pool: Extra candidate documents (see :func:`rag_pool_for`).
        index_dir: Persist the index here and reuse it on a rerun (a corrupt or mismatched
            index is rebuilt with a warning, see :func:`longctx.retrieval.store.get_or_build`).

    Returns:
        The :class:`RagContext`: documents in rank order, gold positions and depth, the kept ids
        and their scores. Empty when nothing fits or there is nothing to rank.
    """
    del seed
    counter = counter if isinstance(counter, TokenCounter) else TokenCounter(counter)
    docs = rag_pool_for(example, chunk_tokens, tokenizer or counter.tokenizer, pool)
    if not docs or budget <= 0:
        return _finish([], [], retriever_name, len(docs))
    texts = [retrieval_text(d) for d in docs]
    if index_dir is not None:
        retriever = get_or_build(retriever_name, texts, index_dir, **(retriever_kwargs or {}))
    else:
        retriever = make_retriever(retriever_name, **(retriever_kwargs or {}))
        retriever.index(texts)
    ranked = retriever.search(example.question, len(docs))

    kept: list[tuple[Document, float]] = []
    used = 0
    for index, score in ranked:
        doc = docs[index]
        # The "\n\n" separator before every document but the first costs about one token.
        cost = counter.count(render_document(len(kept) + 1, doc)) + (1 if kept else 0)
        if used + cost <= budget:
            kept.append((doc, score))
            used += cost
    built = _finish([d for d, _ in kept], kept, retriever_name, len(docs))
    # Token counts of parts do not add exactly: drop the lowest-ranked documents until it fits.
    while kept and counter.count(built.text, cache=False) > budget:
        kept.pop()
        built = _finish([d for d, _ in kept], kept, retriever_name, len(docs))
    return built
