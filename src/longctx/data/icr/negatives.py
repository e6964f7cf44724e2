"""Hard negatives: corpus passages a retriever ranks high for the question that are not gold.

Retrieved hard negatives are the distractors of DPR training (Karpukhin et al., 2020) and of the
HELMET / lost-in-the-middle contexts: passages on the question's topic that do not answer it.
The gold passages themselves, every passage sharing a title with a gold passage (other parts of
the same article may hold the answer) and passages under ``min_words`` words are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from longctx.data.example import Document, Example
from longctx.retrieval.base import make_retriever
from longctx.retrieval.rag import retrieval_text
from longctx.retrieval.store import get_or_build

# Extra hits fetched beyond the wanted count, to make up for the excluded ones.
_SLACK = 24


def _norm(text: str) -> str:
    return " ".join(text.split())


def is_excluded(doc: Document, gold: Sequence[Document]) -> bool:
    """Whether a corpus passage is, or belongs to the article of, one of the gold passages."""
    body = _norm(doc.text)
    for g in gold:
        if (doc.title and doc.title == g.title) or (body and body in _norm(g.text)):
            return True
    return False


def retrieve_negatives(
    examples: Sequence[Example],
    corpus: Sequence[Document],
    k: int,
    retriever: str = "bm25",
    min_words: int = 10,
    index_dir: str | Path | None = None,
    on_status: Callable[[str], None] | None = None,
) -> list[list[Document]]:
    """The ``k`` best-ranked negatives of each example, hardest first.

    Args:
        examples: The examples; each question is the query.
        corpus: The passages to rank (indexed by title and text).
        k: Negatives wanted per example (fewer when the corpus runs out).
        retriever: ``bm25``, ``dense`` or ``hybrid``.
        min_words: Passages with fewer whitespace words are skipped.
        index_dir: When given, the index is cached there (see ``store.get_or_build``).
        on_status: Receives a progress message.

    Returns:
        One ranked list per example; the documents are copies with ``is_gold=False``.
    """
    texts = [retrieval_text(d) for d in corpus]
    if on_status:
        on_status(f"indexing {len(texts)} corpus passages with {retriever}")
    if index_dir is not None:
        index = get_or_build(retriever, texts, index_dir)
    else:
        index = make_retriever(retriever)
        index.index(texts)
    hits = index.search_batch([e.question for e in examples], k + k // 4 + _SLACK)
    out: list[list[Document]] = []
    for example, ranked in zip(examples, hits, strict=True):
        gold = example.gold_documents
        chosen: list[Document] = []
        for idx, _score in ranked:
            doc = corpus[idx]
            if len(doc.text.split()) < min_words or is_excluded(doc, gold):
                continue
            chosen.append(Document(doc.id, doc.title, doc.text, is_gold=False))
            if len(chosen) >= k:
                break
        out.append(chosen)
    return out
