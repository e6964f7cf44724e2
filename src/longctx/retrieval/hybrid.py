"""Hybrid retrieval: BM25 and dense rankings fused by reciprocal rank (Cormack et al., 2009).

Reciprocal-rank fusion scores a text by ``sum over rankings of 1 / (k + rank)`` with 1-based
ranks and ``k = 60``; a text missing from a ranking gets nothing from it. It needs no score
calibration between the lexical (Robertson & Zaragoza, 2009) and dense (Karpukhin et al., 2020)
retrievers, and is a strong, parameter-free baseline for combining them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from longctx.retrieval.base import Retriever, register
from longctx.retrieval.bm25 import BM25Retriever
from longctx.retrieval.dense import DenseRetriever

RRF_K = 60


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]], k: int = RRF_K
) -> list[tuple[int, float]]:
    """Fuse rankings (lists of ids, best first) into ``(id, score)`` pairs, best first.

    Ties are broken by the lower id, so the result is deterministic.

    Example:
        ``reciprocal_rank_fusion([[0, 1], [1, 2]])`` scores id 1 ``1/62 + 1/61``, id 0 ``1/61``
        and id 2 ``1/62``, giving ``[(1, ...), (0, ...), (2, ...)]``.
    """
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            fused[doc] = fused.get(doc, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


@register
class HybridRetriever(Retriever):
    """Reciprocal-rank fusion of a :class:`BM25Retriever` and a :class:`DenseRetriever`.

    Args:
        model: Dense encoder (see :class:`DenseRetriever`).
        stemmer: BM25 stemmer (see :class:`BM25Retriever`).
        rrf_k: The fusion constant ``k`` (60 in Cormack et al., 2009).
        depth: How many results of each retriever are fused (at least the ``k`` asked for);
            ``None`` fuses the whole corpus.
        batch_size: Dense encoder batch size (not saved).
        device: Dense encoder device (not saved).
    """

    name = "hybrid"

    def __init__(
        self,
        model: str | None = None,
        stemmer: str | None = "auto",
        rrf_k: int = RRF_K,
        depth: int | None = 1000,
        batch_size: int = 64,
        device: str | None = None,
    ) -> None:
        super().__init__()
        self.rrf_k = int(rrf_k)
        self.depth = depth
        self.bm25 = BM25Retriever(stemmer=stemmer)
        self.dense = DenseRetriever(model=model, batch_size=batch_size, device=device)

    def params(self) -> dict[str, Any]:
        return {
            "model": self.dense.model,
            "stemmer": self.bm25.stemmer,
            "rrf_k": self.rrf_k,
            "depth": self.depth,
        }

    def prepare(self, texts: Sequence[str]) -> None:
        self.dense.prepare(texts)

    def _index(self, texts: list[str]) -> None:
        self.bm25.index(texts)
        self.dense.index(texts)

    def _depth(self, k: int) -> int:
        return self.size if self.depth is None else max(k, self.depth)

    def _fuse(
        self, lexical: list[tuple[int, float]], dense: list[tuple[int, float]], k: int
    ) -> list[tuple[int, float]]:
        rankings = [[i for i, _ in lexical], [i for i, _ in dense]]
        return reciprocal_rank_fusion(rankings, self.rrf_k)[:k]

    def _search(self, query: str, k: int) -> list[tuple[int, float]]:
        depth = self._depth(k)
        return self._fuse(self.bm25.search(query, depth), self.dense.search(query, depth), k)

    def _search_batch(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]:
        depth = self._depth(k)
        lexical = self.bm25.search_batch(queries, depth)
        dense = self.dense.search_batch(queries, depth)
        return [self._fuse(a, b, k) for a, b in zip(lexical, dense, strict=True)]

    def _save_files(self, folder: Path) -> None:
        self.bm25.save(folder / "bm25")
        self.dense.save(folder / "dense")

    def _load_files(self, folder: Path) -> None:
        bm25 = BM25Retriever.load(folder / "bm25")
        dense = DenseRetriever.load(folder / "dense")
        for part in (bm25, dense):
            if part.size != self.size or part.corpus_hash != self.corpus_hash:
                raise ValueError(f"{part.name} part was built for another corpus")
        dense.batch_size, dense.device = self.dense.batch_size, self.dense.device
        self.bm25, self.dense = bm25, dense  # type: ignore[assignment]
