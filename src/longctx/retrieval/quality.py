"""Retrieval quality: recall@k and NDCG@k of each retriever against gold documents.

Two settings: per-example pools (each example's own documents ranked against its question, as
the RAG baseline of :mod:`longctx.retrieval.rag` does) and one corpus made of every example's
documents (open-domain style, as DPR, Karpukhin et al., 2020, evaluates). Retrievers: BM25
(Robertson & Zaragoza, 2009), dense, and their reciprocal-rank fusion (Cormack et al., 2009).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from longctx.data.example import Example
from longctx.retrieval.base import make_retriever
from longctx.retrieval.rag import retrieval_text

NDCG_K = 10
_BATCH = 256


def _unique(ranked_ids: Sequence[Hashable]) -> list[Hashable]:
    return list(dict.fromkeys(ranked_ids))


def recall_at_k(ranked_ids: Sequence[Hashable], gold_ids: Sequence[Hashable], k: int) -> float:
    """Fraction of the gold ids found among the first ``k`` distinct ranked ids.

    A repeated id keeps its first rank (the ranking is deduplicated before the cut-off), so
    chunk-level rankings mapped to document ids are scored at document level.

    Raises:
        ValueError: ``gold_ids`` is empty (recall is undefined).
    """
    gold = set(gold_ids)
    if not gold:
        raise ValueError("recall@k needs at least one gold id")
    return len(gold.intersection(_unique(ranked_ids)[: max(k, 0)])) / len(gold)


def ndcg_at_k(
    ranked_ids: Sequence[Hashable], gold_ids: Sequence[Hashable], k: int = NDCG_K
) -> float:
    """NDCG@k with binary relevance (Järvelin & Kekäläinen, 2002).

    ``DCG = sum over gold hits at 1-based rank r <= k of 1 / log2(r + 1)``, divided by the DCG of
    an ideal ranking with ``min(len(gold), k)`` gold ids on top. As in :func:`recall_at_k`, a
    repeated id keeps its first rank.

    Raises:
        ValueError: ``gold_ids`` is empty.
    """
    gold = set(gold_ids)
    if not gold:
        raise ValueError("NDCG needs at least one gold id")
    if k <= 0:
        return 0.0
    dcg = sum(
        1.0 / math.log2(rank + 1)
        for rank, doc in enumerate(_unique(ranked_ids)[:k], start=1)
        if doc in gold
    )
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(gold), k) + 1))
    return dcg / ideal


def _summary(runs: list[tuple[list[Hashable], list[Hashable]]], ks: Sequence[int]) -> dict:
    n = len(runs)
    out: dict[str, Any] = {"n": n}
    for k in ks:
        out[f"recall@{k}"] = sum(recall_at_k(r, g, k) for r, g in runs) / n if n else 0.0
    out[f"ndcg@{NDCG_K}"] = sum(ndcg_at_k(r, g, NDCG_K) for r, g in runs) / n if n else 0.0
    return out


def evaluate_retrievers(
    examples: Sequence[Example],
    names: Sequence[str] = ("bm25", "dense", "hybrid"),
    ks: Sequence[int] = (1, 5, 10),
    corpus: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    retriever_kwargs: dict[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Mean recall@k and NDCG@10 of each retriever over the examples with a gold document.

    Args:
        examples: Examples whose documents carry ``is_gold`` flags; those without any gold
            document are left out.
        names: Retriever names.
        ks: Cut-offs for recall.
        corpus: ``False`` ranks each example's own documents (per-example pools); ``True``
            ranks one corpus of all examples' documents (ids ``(example position, doc id)``, so
            equal texts of different examples stay distinct) for every question.
        on_progress: Called as ``on_progress(done, total)``; total = retrievers x examples.
        retriever_kwargs: Parameters per retriever name, e.g. ``{"dense": {"model": path}}``.

    Returns:
        ``{name: {"n": examples, "recall@1": ..., "recall@5": ..., "ndcg@10": ...}}`` (plain,
        JSON-serialisable).
    """
    kwargs = retriever_kwargs or {}
    depth = max([*ks, NDCG_K])
    evaluated = [(pos, ex) for pos, ex in enumerate(examples) if ex.gold_documents]
    total, done = len(names) * len(evaluated), 0
    runs: dict[str, list[tuple[list[Hashable], list[Hashable]]]] = {n: [] for n in names}

    def tick(step: int) -> None:
        nonlocal done
        done += step
        if on_progress is not None:
            on_progress(done, total)

    if corpus:
        docs = [((pos, d.id), d) for pos, ex in enumerate(examples) for d in ex.documents]
        ids = [i for i, _ in docs]
        texts = [retrieval_text(d) for _, d in docs]
        for name in names:
            retriever = make_retriever(name, **kwargs.get(name, {}))
            retriever.index(texts)
            for start in range(0, len(evaluated), _BATCH):
                batch = evaluated[start : start + _BATCH]
                results = retriever.search_batch([ex.question for _, ex in batch], depth)
                for (pos, ex), hits in zip(batch, results, strict=True):
                    gold = [(pos, d.id) for d in ex.gold_documents]
                    runs[name].append(([ids[i] for i, _ in hits], gold))
                tick(len(batch))
    else:
        for start in range(0, len(evaluated), _BATCH):
            block = [ex for _, ex in evaluated[start : start + _BATCH]]
            # Batch the block's encoding (dense): one call instead of two per example.
            batch = [ex.question for ex in block]
            batch += [retrieval_text(d) for ex in block for d in ex.documents]
            for name in names:
                make_retriever(name, **kwargs.get(name, {})).prepare(batch)
            for ex in block:
                texts = [retrieval_text(d) for d in ex.documents]
                gold = [d.id for d in ex.gold_documents]
                for name in names:
                    retriever = make_retriever(name, **kwargs.get(name, {}))
                    retriever.index(texts)
                    hits = retriever.search(ex.question, depth)
                    runs[name].append(([ex.documents[i].id for i, _ in hits], gold))
                    tick(1)
    return {name: _summary(runs[name], ks) for name in names}
