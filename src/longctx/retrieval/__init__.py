"""Retrieval and the RAG baseline: chunking, BM25 / dense / hybrid retrievers, index store,
RAG contexts and retrieval quality.

Retrievers share one interface (:class:`Retriever`: ``index``, ``search``, ``save``, ``load``)
and a registry::

    from longctx.retrieval import make_retriever

    retriever = make_retriever("hybrid")
    retriever.index(["Paris is the capital of France.", "Berlin is in Germany."])
    retriever.search("capital of France", k=1)  # [(0, score)]

Methods: BM25 (Robertson & Zaragoza, 2009), dense bi-encoder retrieval (DPR, Karpukhin et al.,
2020), reciprocal-rank fusion (Cormack et al., 2009), long retrieval units (LongRAG, Jiang et al.,
2024).
"""

from longctx.retrieval.base import (
    RETRIEVERS,
    IndexCorruptError,
    Retriever,
    corpus_hash,
    make_retriever,
    top_k,
)
from longctx.retrieval.bm25 import BM25Retriever
from longctx.retrieval.chunking import (
    chunk_by_tokens,
    chunk_documents,
    split_passages,
    split_sentences,
)
from longctx.retrieval.dense import DenseRetriever
from longctx.retrieval.hybrid import HybridRetriever, reciprocal_rank_fusion
from longctx.retrieval.quality import evaluate_retrievers, ndcg_at_k, recall_at_k
from longctx.retrieval.rag import RagContext, build_rag_context, rag_pool_for, retrieval_text
from longctx.retrieval.store import IndexRebuildWarning, get_or_build

__all__ = [
    "RETRIEVERS",
    "BM25Retriever",
    "DenseRetriever",
    "HybridRetriever",
    "IndexCorruptError",
    "IndexRebuildWarning",
    "RagContext",
    "Retriever",
    "build_rag_context",
    "chunk_by_tokens",
    "chunk_documents",
    "corpus_hash",
    "evaluate_retrievers",
    "get_or_build",
    "make_retriever",
    "ndcg_at_k",
    "rag_pool_for",
    "recall_at_k",
    "reciprocal_rank_fusion",
    "retrieval_text",
    "split_passages",
    "split_sentences",
    "top_k",
]
