"""Tests of retrieval: chunking, BM25 / dense / hybrid retrievers, the index store, RAG contexts
and retrieval metrics. The dense encoder (offline all-MiniLM-L6-v2) loads once per process."""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from longctx.data.context import TokenCounter  # noqa: E402
from longctx.data.example import Document, Example  # noqa: E402
from longctx.retrieval import (  # noqa: E402
    RETRIEVERS,
    HybridRetriever,
    IndexCorruptError,
    IndexRebuildWarning,
    Retriever,
    build_rag_context,
    chunk_by_tokens,
    chunk_documents,
    evaluate_retrievers,
    get_or_build,
    make_retriever,
    ndcg_at_k,
    rag_pool_for,
    recall_at_k,
    reciprocal_rank_fusion,
    split_passages,
    split_sentences,
    top_k,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LONGBENCH = DATA / "longbench_v2"
NAMES = ("bm25", "dense", "hybrid")

PASSAGES = [
    "Paris is the capital and largest city of France, on the river Seine.",
    "Mitochondria are organelles that generate most of the chemical energy of the cell.",
    "Python is a programming language created by Guido van Rossum in 1991.",
    "The Great Barrier Reef, off Queensland, is the largest coral reef system on Earth.",
    "Photosynthesis lets plants convert sunlight into sugar using chlorophyll.",
]
QUERIES = [
    "What is the capital city of France?",
    "Which organelles generate energy inside a cell?",
    "Who created the Python programming language?",
    "Where is the largest coral reef system?",
    "How do plants use chlorophyll and sunlight?",
]


@pytest.fixture(scope="module")
def tokenizer():
    from longctx.models.loader import load_tokenizer

    try:
        return load_tokenizer("embedded")
    except (FileNotFoundError, OSError) as err:
        pytest.skip(f"embedded tokenizer unavailable: {err}")


def _n(tokenizer, text: str) -> int:
    return len(tokenizer.encode(text, add_special_tokens=False))


SYNTHETIC = (
    "  The first sentence is short. The second one asks a question? Yes!\n\n"
    "A new paragraph starts here, and it goes on " + "and on " * 120 + "until it stops.\n"
    "A line with a very long token: " + "x" * 3000 + " then words again. "
    "Unicode: naïve café — “quoted.” Done.  \n"
)

# ----------------------------------------------------------------------------- chunking


def test_split_sentences_rejoins():
    pieces = split_sentences(SYNTHETIC)
    assert "".join(pieces) == SYNTHETIC
    assert pieces[1] == " The second one asks a question?"


@pytest.mark.parametrize("limit", [3, 16, 64, 500])
def test_chunk_by_tokens_synthetic(tokenizer, limit):
    chunks = chunk_by_tokens(SYNTHETIC, tokenizer, limit)
    assert "".join(chunks) == SYNTHETIC
    assert all(_n(tokenizer, c) <= limit for c in chunks)
    assert len(chunks) > 1


def test_chunk_by_tokens_keeps_sentences(tokenizer):
    text = " ".join(f"Sentence number {i} says something about topic {i}." for i in range(60))
    chunks = chunk_by_tokens(text, tokenizer, 40)
    assert "".join(chunks) == text
    assert all(_n(tokenizer, c) <= 40 for c in chunks)
    assert all(c.endswith(".") for c in chunks)  # every cut falls at a sentence end
    assert chunk_by_tokens("", tokenizer) == []
    assert chunk_by_tokens("short text", tokenizer) == ["short text"]
    with pytest.raises(ValueError):
        chunk_by_tokens(text, tokenizer, 0)


def test_chunk_by_tokens_longbench(tokenizer):
    if not LONGBENCH.exists():
        pytest.skip(f"../shared/data not present: {LONGBENCH}")
    from longctx.data.readers import read_examples

    text = read_examples("longbench_v2", LONGBENCH)[0].documents[0].text
    chunks = chunk_by_tokens(text, TokenCounter(tokenizer), 2048)
    assert "".join(chunks) == text
    sizes = [_n(tokenizer, c) for c in chunks]
    assert max(sizes) <= 2048 and len(chunks) >= 10
    assert min(sizes[:-1]) > 1500  # packed, not fragmented


def test_split_passages():
    text = "  ".join(f"w{i}\n" for i in range(250))
    passages = split_passages(text)
    assert [len(p.split()) for p in passages] == [100, 100, 50]
    assert " ".join(passages) == " ".join(text.split())
    assert split_passages("") == []
    assert split_passages("a b c", words=2) == ["a b", "c"]


def test_chunk_documents(tokenizer):
    docs = [Document("d1", "T1", "One. " * 200, is_gold=True), Document("d2", "", "Tiny."),
            Document("d3", "T3", "")]
    chunks = chunk_documents(docs, tokenizer, 50)
    first = [c for c in chunks if c.id.startswith("d1#")]
    assert len(first) > 1 and all(c.is_gold and c.title == "T1" for c in first)
    assert "".join(c.text for c in first) == docs[0].text
    assert [c.id for c in chunks if not c.id.startswith("d1#")] == ["d2#0", "d3#0"]

# ----------------------------------------------------------------------------- retrievers


def test_registry():
    assert set(NAMES) <= set(RETRIEVERS)
    with pytest.raises(KeyError, match="bm25"):
        make_retriever("nope")


@pytest.mark.parametrize("name", NAMES)
def test_retriever_finds_gold_first(name):
    retriever = make_retriever(name)
    retriever.index(PASSAGES)
    for gold, query in enumerate(QUERIES):
        hits = retriever.search(query, 3)
        assert hits[0][0] == gold, (query, hits)
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    assert [h[0][0] for h in retriever.search_batch(QUERIES, 2)] == list(range(5))


@pytest.mark.parametrize("name", NAMES)
def test_k_is_clamped(name):
    retriever = make_retriever(name)
    with pytest.raises(RuntimeError):
        retriever.search("x", 1)
    retriever.index(PASSAGES)
    assert sorted(i for i, _ in retriever.search(QUERIES[0], 100)) == list(range(5))
    assert retriever.search(QUERIES[0], 0) == [] and retriever.search(QUERIES[0], -3) == []
    assert retriever.search("zzzz qqqq", 2)[0][0] in range(5)
    retriever.index([])
    assert retriever.search(QUERIES[0], 5) == []


def test_prepare_warms_the_dense_cache():
    from longctx.retrieval import dense

    texts = [f"A passage about warm caches number {i}." for i in range(3)]
    make_retriever("bm25").prepare(texts)  # a no-op
    make_retriever("hybrid").prepare(texts)
    assert all(t in dense._EMBEDDINGS[dense.default_model()] for t in texts)


def test_top_k_ties_to_lower_index():
    assert top_k([1.0, 3.0, 3.0, 0.5, 3.0], 2) == [(1, 3.0), (2, 3.0)]
    assert [i for i, _ in top_k([0.0] * 4, 10)] == [0, 1, 2, 3]


def test_bm25_ties_are_deterministic():
    retriever = make_retriever("bm25")
    retriever.index(["same text here", "other words", "same text here"])
    assert [i for i, _ in retriever.search("same text", 3)] == [0, 2, 1]


def test_rrf_hand_computed():
    fused = reciprocal_rank_fusion([[2, 0, 1], [0, 1, 2]])
    expected = {0: 1 / 62 + 1 / 61, 1: 1 / 63 + 1 / 62, 2: 1 / 61 + 1 / 63}
    assert [i for i, _ in fused] == [0, 2, 1]
    assert all(math.isclose(s, expected[i]) for i, s in fused)
    # A tie (mirror-image rankings) goes to the lower id; an id missing from a ranking gets 0.
    assert reciprocal_rank_fusion([[1, 0], [0, 1]], k=1) == [(0, 1 / 2 + 1 / 3),
                                                              (1, 1 / 2 + 1 / 3)]
    assert reciprocal_rank_fusion([[0, 1], [2]], k=1) == [(0, 0.5), (2, 0.5), (1, 1 / 3)]


def test_hybrid_fuses_its_parts():
    hybrid = HybridRetriever()
    hybrid.index(PASSAGES)
    query = "Which language did Guido create, and where is the reef?"
    lexical = [i for i, _ in hybrid.bm25.search(query, 5)]
    dense = [i for i, _ in hybrid.dense.search(query, 5)]
    assert hybrid.search(query, 5) == reciprocal_rank_fusion([lexical, dense])


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name, tmp_path):
    retriever = make_retriever(name)
    retriever.index(PASSAGES)
    retriever.save(tmp_path / name)
    meta = json.loads((tmp_path / name / "meta.json").read_text())
    assert meta["retriever"] == name and meta["size"] == 5 and len(meta["corpus_hash"]) == 64
    for loaded in (Retriever.load(tmp_path / name), type(retriever).load(tmp_path / name)):
        assert type(loaded) is type(retriever)
        assert loaded.search_batch(QUERIES, 5) == retriever.search_batch(QUERIES, 5)

# ----------------------------------------------------------------------------- store


def _build_quietly(name, texts, folder):
    with warnings.catch_warnings():
        warnings.simplefilter("error", IndexRebuildWarning)
        return get_or_build(name, texts, folder)


def test_store_reuses_matching_index(tmp_path):
    folder = tmp_path / "idx"
    first = _build_quietly("bm25", PASSAGES, folder)
    stamp = (folder / "meta.json").stat().st_mtime_ns
    again = _build_quietly("bm25", PASSAGES, folder)
    assert (folder / "meta.json").stat().st_mtime_ns == stamp  # loaded, not rebuilt
    assert again.search_batch(QUERIES, 5) == first.search_batch(QUERIES, 5)


@pytest.mark.parametrize("damage, reason", [
    ("garble", "checksum"), ("delete", "missing"), ("meta", "not valid JSON"),
    ("nometa", "meta.json is missing"), ("corpus", "corpus changed")])
def test_store_detects_tampering(tmp_path, damage, reason):
    folder = tmp_path / "idx"
    get_or_build("bm25", PASSAGES, folder)
    data = next(p for p in (folder / "bm25s").iterdir() if p.suffix == ".npy")
    texts = PASSAGES
    if damage == "garble":
        data.write_bytes(b"\x93NUMPY garbage" + data.read_bytes()[20:])
    elif damage == "delete":
        data.unlink()
    elif damage == "meta":
        (folder / "meta.json").write_text("{not json")
    elif damage == "nometa":
        (folder / "meta.json").unlink()
    else:
        texts = PASSAGES[::-1]
    if damage != "corpus":
        with pytest.raises(IndexCorruptError):
            Retriever.load(folder)
    with pytest.warns(IndexRebuildWarning, match=reason):
        rebuilt = get_or_build("bm25", texts, folder)
    assert rebuilt.search(QUERIES[0], 1)[0][0] == texts.index(PASSAGES[0])
    assert _build_quietly("bm25", texts, folder).corpus_hash == rebuilt.corpus_hash


def test_store_detects_corrupt_dense_and_other_params(tmp_path):
    folder = tmp_path / "dense"
    get_or_build("dense", PASSAGES, folder)
    (folder / "index.faiss").write_bytes(b"not a faiss index")
    with pytest.warns(IndexRebuildWarning, match="checksum"):
        rebuilt = get_or_build("dense", PASSAGES, folder)
    assert rebuilt.search(QUERIES[2], 1)[0][0] == 2
    with pytest.warns(IndexRebuildWarning, match="retriever"):
        get_or_build("bm25", PASSAGES, folder)
    with pytest.warns(IndexRebuildWarning, match="parameters"):
        get_or_build("bm25", PASSAGES, folder, stemmer="none")

# ----------------------------------------------------------------------------- RAG


def _example() -> Example:
    topics = ["France", "cells", "Python", "reefs", "plants"]
    docs = [Document(f"d{i}", topics[i], text + " " + "Filler words about history. " * (i * 3),
                     is_gold=(i == 2))
            for i, text in enumerate(PASSAGES)]
    return Example("ex1", QUERIES[2], ["Guido van Rossum"], docs, task="toy")


@pytest.mark.parametrize("name", NAMES)
def test_rag_context_within_budget_and_deterministic(tokenizer, name):
    counter = TokenCounter(tokenizer)
    example = _example()
    previous = 0
    for budget in (0, 10, 40, 80, 150, 400, 5000):
        ctx = build_rag_context(example, name, budget, counter)
        assert counter.count(ctx.text, cache=False) <= budget
        assert ctx == build_rag_context(example, name, budget, TokenCounter(tokenizer))
        assert ctx.retrieved_ids == ctx.doc_ids and len(ctx.scores) == len(ctx.documents)
        assert ctx.text.startswith("[DOC 1]") or not ctx.text
        assert len(ctx.documents) >= previous
        previous = len(ctx.documents)
        if "d2" in ctx.retrieved_ids:  # the gold document ranks first once it fits
            assert ctx.retrieved_ids[0] == "d2" and ctx.gold_positions == [1] and ctx.depth == 0
        else:
            assert ctx.gold_positions == [] and ctx.depth is None
    assert previous == 5 and ctx.gold_positions == [1]  # the largest budget holds everything


def test_rag_skips_a_document_that_does_not_fit(tokenizer):
    counter = TokenCounter(tokenizer)
    big = Document("big", "", "Python " + "long text about snakes and Python " * 80)
    small = Document("small", "", "Python is a language.")
    example = Example("ex2", "long text about snakes", ["x"], [small, big])
    ranking = make_retriever("bm25")
    ranking.index([big.text, small.text])
    assert ranking.search(example.question, 1)[0][0] == 0  # the big one ranks first...
    ctx = build_rag_context(example, "bm25", 60, counter)  # ...but only the small one fits
    assert ctx.retrieved_ids == ["small"] and ctx.gold_positions == [] and ctx.depth is None


def test_rag_over_chunks_of_one_long_document(tokenizer):
    if LONGBENCH.exists():
        from longctx.data.readers import read_examples

        example = read_examples("longbench_v2", LONGBENCH)[0]
    else:
        body = " ".join(f"Fact {i}: the code for box {i} is {i * 7}." for i in range(2000))
        example = Example("long", "What is the code for box 1234?", ["8638"],
                          [Document("context", "", body)])
    counter = TokenCounter(tokenizer)
    pool = rag_pool_for(example, chunk_tokens=256, tokenizer=tokenizer)
    assert len(pool) > 20 and pool[0].id == "context#0"
    for budget in (600, 2000):
        ctx = build_rag_context(example, "bm25", budget, counter, chunk_tokens=256)
        assert counter.count(ctx.text, cache=False) <= budget
        assert len(ctx.documents) >= budget // 400
        assert all(i.startswith("context#") for i in ctx.retrieved_ids)
        assert ctx.pool_size == len(pool)


def test_rag_pool_adds_other_examples_documents():
    example = _example()
    others = [Document("ctx0", "Berlin", "Berlin is in Germany.", is_gold=True),
              Document("ctx0", "France", "duplicate title, skipped")]
    pool = rag_pool_for(example, pool=others)
    assert [d.id for d in pool][-1] == "pool0:ctx0" and not pool[-1].is_gold
    assert len(pool) == 6

# ----------------------------------------------------------------------------- quality


def test_recall_and_ndcg_hand_computed():
    ranked, gold = ["a", "b", "c", "d"], ["b", "d"]
    assert [recall_at_k(ranked, gold, k) for k in (0, 1, 2, 3, 4, 10)] == [0, 0, .5, .5, 1, 1]
    ideal = 1 + 1 / math.log2(3)
    assert math.isclose(ndcg_at_k(ranked, gold), (1 / math.log2(3) + 1 / math.log2(5)) / ideal)
    assert math.isclose(ndcg_at_k(ranked, gold, 2), (1 / math.log2(3)) / ideal)
    assert math.isclose(ndcg_at_k(["b", "x"], ["b", "d", "e"], 1), 1.0)
    assert ndcg_at_k(["b", "d"], gold) == 1.0 and ndcg_at_k(["x"], gold) == 0.0
    # A repeated id keeps its first rank (e.g. several chunks of one document).
    assert recall_at_k(["b", "b", "d"], gold, 2) == 1.0
    assert math.isclose(ndcg_at_k(["x", "b", "b", "d"], gold, 3),
                        (1 / math.log2(3) + 1 / math.log2(4)) / ideal)
    with pytest.raises(ValueError):
        recall_at_k(ranked, [], 1)


def test_evaluate_retrievers():
    examples = [_example(), Example("nogold", "q", ["a"], [Document("x", "", "text")])]
    calls = []
    result = evaluate_retrievers(examples, names=("bm25", "dense"), ks=(1, 5),
                                 on_progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (2, 2)
    assert json.loads(json.dumps(result)) == result
    for name in ("bm25", "dense"):
        assert result[name]["n"] == 1
        assert result[name]["recall@1"] == 1.0 and result[name]["ndcg@10"] == 1.0
    pooled = evaluate_retrievers(examples * 2, names=("bm25",), ks=(1, 5), corpus=True)
    assert pooled["bm25"]["n"] == 2 and pooled["bm25"]["recall@5"] == 1.0
    # The same text in two examples: only the first example's copy can rank first.
    assert pooled["bm25"]["recall@1"] == 0.5
