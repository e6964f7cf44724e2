"""Attention-based retrieval analysis: NDCG, Pearson, document spans, attention mass, end to end."""

from __future__ import annotations

import json
import math

import pytest
import torch

from longctx.analysis.attention import (
    analyze_attention,
    attention_doc_scores,
    document_spans,
    encode_with_spans,
    parse_layers,
)
from longctx.analysis.prompts import document_char_spans
from longctx.analysis.ranking import ndcg_at_k, pearson, rank_by_score
from longctx.analysis.weights import attention_doc_mass_by_layer
from longctx.data.context import render_documents
from longctx.data.example import Document, Example
from longctx.data.synthetic import generate_synthetic
from longctx.eval.tasks import get_task


def test_ndcg_hand_computed():
    assert ndcg_at_k([1, 2, 3], [1]) == pytest.approx(1.0)
    assert ndcg_at_k([3, 1, 2], [1]) == pytest.approx(1 / math.log2(3))
    # gold at ranks 2 and 4; ideal: ranks 1 and 2
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k([1, 2, 3, 4], [2, 4]) == pytest.approx(expected)
    assert ndcg_at_k([1, 2, 3, 4], [2, 4]) == pytest.approx(0.650921, abs=1e-6)
    # a gold item below the cut-off does not count
    assert ndcg_at_k(list(range(1, 13)), [11], k=10) == 0.0
    # the ideal uses min(|gold|, k) items
    assert ndcg_at_k([5, 6, 1], [5, 6, 7], k=2) == pytest.approx(1.0)
    # a repeated item counts once
    assert ndcg_at_k([2, 2, 1], [2]) == pytest.approx(1.0)
    assert ndcg_at_k([9, 2, 2], [2, 3]) == pytest.approx(
        (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    )
    assert math.isnan(ndcg_at_k([1, 2], []))
    with pytest.raises(ValueError):
        ndcg_at_k([1], [1], k=0)


def test_rank_by_score_breaks_ties_by_position():
    assert rank_by_score([0.1, 0.5, 0.1, 0.3]) == [2, 4, 1, 3]


def test_pearson_hand_computed():
    r, p = pearson([1, 2, 3, 4], [0, 1, 0, 1])
    # r = 1 / sqrt(5); with 2 degrees of freedom the two-sided p is 1 - |t| / sqrt(2 + t^2)
    assert r == pytest.approx(1 / math.sqrt(5))
    t = r * math.sqrt(2) / math.sqrt(1 - r * r)
    assert p == pytest.approx(1 - t / math.sqrt(2 + t * t))
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx((1.0, 0.0), abs=1e-6)


def test_pearson_undefined_cases_return_nan_with_a_note():
    notes: list[str] = []
    r, p = pearson([0.2, 0.5, 0.9], [1, 1, 1], notes)
    assert math.isnan(r) and math.isnan(p)
    assert notes == ["correlation undefined: y constant"]
    notes = []
    r, _ = pearson([0.2, float("nan"), 0.9, 0.4], [1, 0, 0, 1], notes)
    assert notes == ["1 pair(s) with a non-finite value left out"]
    assert r == pytest.approx(pearson([0.2, 0.9, 0.4], [1, 0, 1])[0])
    assert all(math.isnan(v) for v in pearson([1.0], [2.0]))
    with pytest.raises(ValueError, match="differ in length"):
        pearson([1, 2], [1])


def test_parse_layers():
    assert parse_layers("all", 30) == range(30)
    assert parse_layers(None, 4) == range(4)
    assert parse_layers("10:20", 30) == range(10, 20)
    assert parse_layers(":2", 30) == range(0, 2)
    assert parse_layers("-4:", 30) == range(26, 30)
    assert parse_layers("3", 30) == range(3, 4)
    for bad in ("5:5", "28:40", "x", "1:2:3"):
        with pytest.raises(ValueError):
            parse_layers(bad, 30)


DOCS = [
    Document("a", "Alpha Town", "Alpha is a town on the river.", True),
    Document("b", "", "Bravo makes copper kettles.\nSince 1900."),
    Document("c", "Charlie", "Charlie was born in Alpha in 1901."),
]


def test_document_char_spans_on_plain_text():
    context = render_documents(DOCS)
    text = "Intro.\n\n" + context + "\n\nQuestion: where?"
    spans = document_char_spans(text, 3)
    pieces = [text[s:e] for s, e in spans]
    assert pieces == [
        "[DOC 1] (Title: Alpha Town) Alpha is a town on the river.",
        "[DOC 2] Bravo makes copper kettles.\nSince 1900.",
        "[DOC 3] (Title: Charlie) Charlie was born in Alpha in 1901.",
    ]
    with pytest.raises(ValueError, match=r"\[DOC 4\] not found"):
        document_char_spans(text, 4)


def test_document_spans_on_a_rendered_prompt(tokenizer):
    task = get_task("synthetic")
    example = Example("q1", "Where was Charlie born?", ["Alpha"], DOCS)
    prompt = task.prompt(tokenizer, example, render_documents(DOCS))
    spans = document_spans(tokenizer, prompt.text, 3)
    ids, same = encode_with_spans(tokenizer, prompt.text, 3)
    assert same == spans
    assert ids == tokenizer.encode(prompt.text, add_special_tokens=False)  # chat template
    for (start, end), nxt in zip(spans, spans[1:], strict=False):
        assert start < end <= nxt[0]
    for i, ((start, end), doc) in enumerate(zip(spans, DOCS, strict=True), start=1):
        text = tokenizer.decode(ids[start:end]).strip()
        assert text.startswith(f"[DOC {i}]"), text
        assert text.endswith(doc.text.strip().splitlines()[-1]), text
        if doc.title:
            assert f"(Title: {doc.title})" in text
    after = tokenizer.decode(ids[spans[-1][1] :])
    assert after.lstrip().startswith("Question: Where was Charlie born?")
    assert "DOC" not in tokenizer.decode(ids[: spans[0][0]])


def test_attention_mass_matches_a_full_eager_forward(tokenizer):
    from tests.conftest import make_tiny_llama

    model = make_tiny_llama(tokenizer)
    assert model.config._attn_implementation != "eager"
    before = model.config._attn_implementation
    ids = list(range(200, 260))
    spans = [(2, 10), (10, 30), (30, 55)]
    answer = [300, 301, 302]
    masses = attention_doc_mass_by_layer(model, ids, spans, answer)
    assert model.config._attn_implementation == before  # restored
    # reference: one eager forward over prompt + answer, queries 59..61 (they predict the answer)
    reference = make_tiny_llama(tokenizer)
    reference.set_attn_implementation("eager")
    with torch.inference_mode():
        out = reference(input_ids=torch.tensor([ids + answer[:-1]]), output_attentions=True)
    for layer, weights in enumerate(out.attentions):
        rows = weights[0, :, len(ids) - 1 :, :]  # heads, queries, keys
        for d, (s, e) in enumerate(spans):
            expected = rows[:, :, s:e].sum(-1).mean().item()
            assert masses[layer, d] == pytest.approx(expected, abs=1e-5)
    assert ((masses >= 0) & (masses <= 1)).all()
    assert (masses.sum(axis=1) <= 1 + 1e-6).all()
    scores = attention_doc_scores(model, ids, spans, range(1, 2), answer)
    assert scores == pytest.approx(list(masses[1]), abs=1e-6)
    last_only = attention_doc_scores(model, ids, spans)
    assert len(last_only) == 3 and all(0 <= s <= 1 for s in last_only)
    with pytest.raises(ValueError, match="outside the prompt"):
        attention_doc_scores(model, ids, [(50, 70)])


def test_analyze_attention_on_examples_end_to_end(tiny_loaded, tmp_path):
    examples = generate_synthetic(3, seed=0)
    result = analyze_attention(tiny_loaded, examples, layers="1:2", out=tmp_path, length=768)
    saved = json.loads((tmp_path / "analysis.json").read_text())
    assert saved["summary"] == result["summary"]
    summary = result["summary"]
    assert summary["n_analyzed"] == 3 and summary["skipped"] == {}
    assert summary["primary"] == "1:2"
    assert set(summary["ranges"]) == {"1:2", "all"}
    assert summary["contexts_from_doc_ids"] == 0 and summary["prompt_tokens_differ"] == 0
    assert len(summary["per_layer"]) == 2
    for pred in result["predictions"]:
        assert pred["context_rebuilt"] == "exact"
        assert pred["prompt_tokens_rebuilt"] == pred["prompt_tokens"]
        assert sorted(pred["ranking"]) == list(range(1, pred["n_docs"] + 1))
        assert 0.0 <= pred["ndcg@10"] <= 1.0
        assert pred["correct"] in (0.0, 1.0)
        for details in pred["by_range"].values():
            assert len(details["scores"]) == pred["n_docs"]
            assert all(0.0 <= s <= 1.0 for s in details["scores"])
            assert sum(details["scores"]) <= 1.0 + 1e-6
            assert details["ndcg@10"] == pytest.approx(
                ndcg_at_k(rank_by_score(details["scores"]), pred["gold_positions"]), abs=1e-3
            )
    mean = sum(p["ndcg@10"] for p in result["predictions"]) / 3
    assert summary["ranges"]["1:2"]["mean_ndcg@10"] == pytest.approx(mean)
    r, p = pearson(
        [p["ndcg@10"] for p in result["predictions"]],
        [p["correct"] for p in result["predictions"]],
    )
    got = summary["ranges"]["1:2"]
    if math.isnan(r):  # a random model usually answers nothing right: undefined, noted
        assert got["pearson_r"] is None and got["notes"]
    else:
        assert got["pearson_r"] == pytest.approx(r) and got["pearson_p"] == pytest.approx(p)


def test_analyze_attention_on_a_run_folder(tiny_loaded, tmp_path):
    from longctx.eval.config import EvalConfig
    from longctx.eval.runner import run_eval

    run = tmp_path / "run"
    cfg = EvalConfig(
        task="synthetic",
        synthetic_n=3,
        lengths=[512],
        modes=["full", "gold"],
        max_new_tokens=4,
        out=str(run),
    )
    run_eval(cfg, loaded=tiny_loaded)
    result = analyze_attention(tiny_loaded, run, layers=["0:1"], out=tmp_path / "analysis")
    summary = result["summary"]
    assert summary["n_analyzed"] == 3
    assert summary["skipped"] == {"mode gold not analysed": 3}
    assert summary["contexts_from_doc_ids"] == 0
    assert result["task"] == "synthetic" and result["run_model"] == "embedded"
    assert (tmp_path / "analysis" / "analysis.json").exists()
    with pytest.raises(FileNotFoundError, match="missing config.yaml"):
        analyze_attention(tiny_loaded, tmp_path / "analysis")
