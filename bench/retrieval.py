"""BM25 throughput (bm25s vs rank_bm25) and recall@k of BM25 / dense / hybrid retrieval.

    python bench/retrieval.py [--data ../shared/data] [--hotpot-n 400] [--nq-n 0] [--k 5]
                              [--names bm25,dense,hybrid] [--repeats 1]

Two settings, on the real data of ``../shared/data``:

* HotpotQA (distractor dev, 400 questions): each question's 10 paragraphs are its own pool
  (per-example pools, as the RAG baseline ranks them); 400 small indexes, one query each.
* NQ-open (oracle, 2655 questions): the 2655 gold passages form one corpus and every question is
  a query; its gold is its own passage (DPR-style open retrieval, Karpukhin et al., 2020).

Throughput: ``bm25s`` (BM25, Robertson & Zaragoza, 2009, with eagerly precomputed sparse
scores) against ``rank_bm25.BM25Okapi`` on the same corpora and queries, both given the same
tokens (the retriever's tokenizer: lower-case, English stopwords, stemmer), timed once and
reported separately; a query is scored against every document and the top k taken the same way
for both. Their recall differs a little because their BM25 variants differ (bm25s: Lucene IDF;
rank_bm25: Okapi IDF with a floor for common terms).

Quality: recall@k and NDCG@10 of bm25, dense (all-MiniLM-L6-v2) and hybrid (reciprocal-rank
fusion, Cormack et al., 2009), with the library's own retrievers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from longctx.data.example import Example  # noqa: E402
from longctx.data.readers import read_examples  # noqa: E402
from longctx.retrieval import BM25Retriever, evaluate_retrievers, recall_at_k, top_k  # noqa: E402
from longctx.retrieval.rag import retrieval_text  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

Pools = list[tuple[list[str], str, list[int]]]  # (texts, query, gold indexes) per query


def _time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Best wall time of ``repeats`` runs, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def bench_bm25s(corpora: list[list[list[str]]], queries: list[list[list[str]]], k: int,
                repeats: int) -> tuple[float, float, list[list[list[int]]]]:
    """Index and query seconds of ``bm25s``; ``queries[c]`` are the queries of ``corpora[c]``."""
    import bm25s

    def build():
        models = []
        for tokens in corpora:
            model = bm25s.BM25()
            model.index(tokens, show_progress=False)
            models.append(model)
        return models

    def scores(model, tokens):
        ids = model.get_tokens_ids(tokens)
        return model.get_scores_from_ids(ids) if ids else np.zeros(model.scores["num_docs"])

    index_s, models = _time(build, repeats)
    query_s, hits = _time(lambda: [[[i for i, _ in top_k(scores(m, t), k)] for t in qs]
                                   for m, qs in zip(models, queries, strict=True)], repeats)
    return index_s, query_s, hits


def bench_rank_bm25(corpora: list[list[list[str]]], queries: list[list[list[str]]], k: int,
                    repeats: int) -> tuple[float, float, list[list[list[int]]]]:
    """The same with ``rank_bm25.BM25Okapi``."""
    from rank_bm25 import BM25Okapi

    index_s, models = _time(lambda: [BM25Okapi(tokens) for tokens in corpora], repeats)
    query_s, hits = _time(lambda: [[[i for i, _ in top_k(np.asarray(m.get_scores(t)), k)]
                                    for t in qs] for m, qs in zip(models, queries, strict=True)],
                          repeats)
    return index_s, query_s, hits


def _recall(hits: list[list[list[int]]], golds: list[list[list[int]]], k: int) -> float:
    scores = [recall_at_k(h, g, k) for hs, gs in zip(hits, golds, strict=True)
              for h, g in zip(hs, gs, strict=True)]
    return sum(scores) / len(scores)


def throughput(name: str, examples: Sequence[Example], corpus: bool, k: int,
               repeats: int) -> list[str]:
    """Table rows comparing bm25s and rank_bm25 on one setting."""
    if corpus:
        texts = [retrieval_text(d) for ex in examples for d in ex.documents]
        offsets = np.cumsum([0] + [len(ex.documents) for ex in examples])
        corpora, queries = [texts], [[ex.question for ex in examples]]
        golds = [[[int(offsets[p]) + i for i, d in enumerate(ex.documents) if d.is_gold]
                  for p, ex in enumerate(examples)]]
    else:
        kept = [ex for ex in examples if ex.gold_documents]
        corpora = [[retrieval_text(d) for d in ex.documents] for ex in kept]
        queries = [[ex.question] for ex in kept]
        golds = [[[i for i, d in enumerate(ex.documents) if d.is_gold]] for ex in kept]
    n_docs, n_queries = sum(map(len, corpora)), sum(map(len, queries))
    tokenize = BM25Retriever().tokenize
    start = time.perf_counter()
    doc_tokens, query_tokens = [tokenize(c) for c in corpora], [tokenize(q) for q in queries]
    seconds = time.perf_counter() - start
    rows = [f"{name:<22} {'tokenize':<10} {n_docs:>6} {n_queries:>7} "
            f"{(n_docs + n_queries) / seconds:>12,.0f} {'(texts/s, shared by both)':>22}"]
    rates = {}
    for lib, fn in (("bm25s", bench_bm25s), ("rank_bm25", bench_rank_bm25)):
        index_s, query_s, hits = fn(doc_tokens, query_tokens, k, repeats)
        rates[lib] = (n_docs / index_s, n_queries / query_s)
        rows.append(f"{name:<22} {lib:<10} {n_docs:>6} {n_queries:>7} {n_docs / index_s:>12,.0f} "
                    f"{n_queries / query_s:>12,.0f} {_recall(hits, golds, k):>9.3f}")
    ratio = [a / b for a, b in zip(rates["bm25s"], rates["rank_bm25"], strict=True)]
    rows.append(f"{name:<22} {'ratio':<10} {'':>6} {'':>7} {ratio[0]:>11.1f}x {ratio[1]:>11.1f}x")
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--hotpot-n", type=int, default=400, help="HotpotQA questions (0: all)")
    parser.add_argument("--nq-n", type=int, default=0, help="NQ questions (0: all 2655)")
    parser.add_argument("--k", type=int, default=5, help="recall cut-off")
    parser.add_argument("--names", default="bm25,dense,hybrid", help="retrievers to score")
    parser.add_argument("--repeats", type=int, default=1, help="timing repeats (best taken)")
    args = parser.parse_args(argv)

    hotpot_path = args.data / "hotpotqa" / "hotpot_dev_distractor_400.json"
    nq_path = args.data / "nq_open" / "nq-open-oracle.jsonl.gz"
    for path in (hotpot_path, nq_path):
        if not path.exists():
            sys.exit(f"data not found: {path} (pass --data)")
    hotpot = read_examples("hotpotqa", hotpot_path)[:args.hotpot_n or None]
    nq = read_examples("nq", nq_path)[:args.nq_n or None]
    names = [n for n in args.names.split(",") if n]
    print(f"cpus={os.cpu_count()} bm25 stemmer={BM25Retriever().stemmer} "
          f"hotpotqa={len(hotpot)} nq={len(nq)}\n")

    print("BM25 throughput (same tokens for both libraries; tokenization timed separately)")
    print(f"{'setting':<22} {'library':<10} {'docs':>6} {'queries':>7} {'index docs/s':>12} "
          f"{'queries/s':>12} {f'recall@{args.k}':>9}")
    for row in throughput("hotpotqa per-example", hotpot, False, args.k, args.repeats):
        print(row)
    for row in throughput("nq one corpus", nq, True, args.k, args.repeats):
        print(row, flush=True)

    print(f"\nRetrieval quality (recall@{args.k}, NDCG@10; seconds include indexing and dense "
          "encoding; hybrid reuses the dense run's cached embeddings)")
    print(f"{'setting':<22} {'retriever':<10} {'n':>6} {f'recall@{args.k}':>9} "
          f"{'ndcg@10':>8} {'seconds':>8}")
    for setting, examples, corpus in (("hotpotqa per-example", hotpot, False),
                                      ("nq one corpus", nq, True)):
        for name in names:
            start = time.perf_counter()
            result = evaluate_retrievers(examples, names=(name,), ks=(args.k,), corpus=corpus)
            seconds = time.perf_counter() - start
            r = result[name]
            print(f"{setting:<22} {name:<10} {r['n']:>6} {r[f'recall@{args.k}']:>9.3f} "
                  f"{r['ndcg@10']:>8.3f} {seconds:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
