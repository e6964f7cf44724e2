import pytest

from longctx.data.context import (
    TokenCounter,
    build_context,
    format_length,
    parse_length,
    parse_lengths,
    render_document,
    truncate_middle,
)
from longctx.data.example import Document
from longctx.data.synthetic import generate_synthetic
from longctx.eval.runner import distractor_pool
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def synthetic():
    return generate_synthetic(n=20, seed=3, n_distractors=60)


@pytest.fixture(scope="module")
def hotpot():
    from longctx.data.readers import read_examples

    return read_examples("hotpotqa", shared_path("hotpotqa", "hotpot_dev_distractor_400.json"))


def test_parse_lengths():
    assert parse_lengths("1k,2k, 4k,128k") == [1024, 2048, 4096, 131072]
    assert parse_length("1500") == 1500 and parse_length("1m") == 1024 * 1024
    assert format_length(131072) == "128k" and format_length(1500) == "1500"
    with pytest.raises(ValueError, match="bad length"):
        parse_length("lots")


def test_render_document_format():
    doc = Document("x", "Velmora", "  Some text. ", True)
    assert render_document(3, doc) == "[DOC 3] (Title: Velmora) Some text."
    assert render_document(1, Document("y", "", "t")) == "[DOC 1] t"


@pytest.mark.parametrize("budget", [512, 1024, 2048])
def test_budget_met_within_two_percent_synthetic(synthetic, tokenizer, budget):
    counter = TokenCounter(tokenizer)
    pool = distractor_pool(synthetic)
    for ex in synthetic[:5]:
        built = build_context(ex, "full", counter, budget, seed=1, pool=pool)
        n = counter.count(built.text, cache=False)
        assert 0.98 * budget <= n <= budget, (ex.id, n)
        assert {d.id for d in ex.gold_documents} <= set(built.doc_ids)


@pytest.mark.parametrize("budget", [1024, 4096])
def test_budget_met_within_two_percent_hotpotqa(hotpot, tokenizer, budget):
    counter = TokenCounter(tokenizer)
    pool = distractor_pool(hotpot)
    for ex in hotpot[:5]:
        built = build_context(ex, "full", counter, budget, seed=0, pool=pool)
        n = counter.count(built.text, cache=False)
        assert 0.98 * budget <= n <= budget, (ex.id, n)
        assert len(built.gold_positions) == 2
        own = {d.title for d in ex.documents}
        # pool documents never repeat one of the example's own titles
        titles = [d.title for d in built.documents]
        assert len(titles) == len(set(titles))
        assert own & set(titles) >= {d.title for d in ex.gold_documents}


@pytest.mark.parametrize("depth", [0.0, 0.25, 0.5, 1.0])
def test_gold_at_requested_depth(synthetic, tokenizer, depth):
    counter = TokenCounter(tokenizer)
    ex = next(e for e in synthetic if len(e.gold_documents) == 1)
    built = build_context(ex, "full", counter, 1024, depth=depth, seed=0)
    n = len(built.documents)
    assert built.gold_positions == [round(depth * (n - 1)) + 1]
    assert built.depth == pytest.approx((built.gold_positions[0] - 1) / (n - 1))


def test_two_gold_documents_stay_together_at_depth(synthetic, tokenizer):
    ex = next(e for e in synthetic if len(e.gold_documents) == 2)
    built = build_context(ex, "full", TokenCounter(tokenizer), 1024, depth=0.5, seed=0)
    first, second = built.gold_positions
    assert second == first + 1
    assert abs(built.depth - 0.5) < 0.1


def test_same_seed_same_order_other_seed_differs(synthetic, tokenizer):
    counter = TokenCounter(tokenizer)
    ex = synthetic[0]
    a = build_context(ex, "full", counter, 1024, seed=7)
    b = build_context(ex, "full", counter, 1024, seed=7)
    c = build_context(ex, "full", counter, 1024, seed=8)
    assert a.doc_ids == b.doc_ids and a.text == b.text
    assert a.doc_ids != c.doc_ids


def test_gold_and_none_modes(synthetic):
    ex = next(e for e in synthetic if len(e.gold_documents) == 2)
    gold = build_context(ex, "gold")
    assert [d.is_gold for d in gold.documents] == [True, True]
    assert gold.text.startswith("[DOC 1] (Title: ")
    none = build_context(ex, "none")
    assert none.documents == [] and none.text == "" and none.depth is None
    with pytest.raises(ValueError, match="unknown mode"):
        build_context(ex, "most")
    with pytest.raises(ValueError, match="tokenizer"):
        build_context(ex, "full", None, 100)


def test_truncate_middle():
    ids = list(range(10))
    assert truncate_middle(ids, 4) == [0, 1, 8, 9]
    assert truncate_middle(ids, 5) == [0, 1, 7, 8, 9]
    assert truncate_middle(ids, 20) == ids
    assert truncate_middle(ids, 0) == []
