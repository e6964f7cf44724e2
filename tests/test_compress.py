"""KV-cache compression: exactness at ratio 0, kept sizes and bytes, top-k attention, registry."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from longctx.compress import (
    DOCUMENTED_METHODS,
    METHODS,
    UnsupportedModelError,
    check_supported,
    generate_compressed,
    generate_many,
    make_method,
    resident_bytes,
)
from longctx.compress.topk_decode import TopKDecode, topk_attention
from longctx.models.loader import LoadedModel
from tests.conftest import make_tiny_llama, require_kernel

CONTEXT_LEN = 96
NEW_TOKENS = 4
PRESSES = ["snapkv", "streaming_llm", "expected_attention", "knorm", "tova", "pyramidkv", "adakv"]
# Small observation windows so the tiny contexts exercise the pyramid and window logic.
PRESS_KW = {"snapkv": {"window_size": 16}, "pyramidkv": {"window_size": 8}}


def _method(name: str, ratio: float = 0.0, **kw):
    return make_method(name, ratio=ratio, **{**PRESS_KW.get(name, {}), **kw})


@pytest.fixture(scope="module")
def loaded(tokenizer) -> LoadedModel:
    """A private tiny Llama (the shared one must not see our attention switches)."""
    return LoadedModel(make_tiny_llama(tokenizer, seed=0), tokenizer, "tiny-random", 4096)


@pytest.fixture(scope="module")
def prompt() -> tuple[list[int], list[list[int]]]:
    gen = torch.Generator().manual_seed(1234)
    context = torch.randint(3, 8000, (CONTEXT_LEN,), generator=gen).tolist()
    questions = [torch.randint(3, 8000, (n,), generator=gen).tolist() for n in (6, 4)]
    return context, questions


@pytest.fixture(scope="module")
def reference(loaded, prompt):
    context, questions = prompt
    return generate_compressed(
        loaded, context, questions[0], make_method("none"), NEW_TOKENS, return_logits=True
    )


def _same(out, ref) -> None:
    assert out.token_ids == ref.token_ids
    assert out.logits.shape == ref.logits.shape
    assert torch.allclose(out.logits, ref.logits, rtol=0, atol=1e-5)


def test_registry_matches_documented_list():
    assert len(DOCUMENTED_METHODS) == len(set(DOCUMENTED_METHODS))
    assert sorted(METHODS) == sorted(DOCUMENTED_METHODS)
    for name, cls in METHODS.items():
        assert cls.name == name


def test_make_method_errors():
    with pytest.raises(KeyError, match="known"):
        make_method("no-such-method")
    with pytest.raises(ValueError):
        make_method("none", ratio=0.5)
    with pytest.raises(ValueError):
        make_method("snapkv", ratio=1.0)


def test_none_matches_single_forward(loaded, prompt, reference):
    context, questions = prompt
    ids = torch.tensor([context + questions[0]])
    with torch.inference_mode():
        logits = loaded.model(input_ids=ids).logits[0, -1].float()
    assert torch.allclose(reference.logits[0], logits, atol=1e-4)
    assert reference.kept_per_layer == [CONTEXT_LEN, CONTEXT_LEN]
    assert reference.kv_bytes_kept == reference.kv_bytes_full == reference.kv_bytes_resident


@pytest.mark.parametrize("name", PRESSES)
def test_ratio_zero_is_exact(loaded, prompt, reference, name):
    context, questions = prompt
    out = generate_compressed(
        loaded, context, questions[0], _method(name), NEW_TOKENS, return_logits=True
    )
    _same(out, reference)
    assert out.kv_bytes_kept == reference.kv_bytes_full


def test_topk_with_full_budget_is_exact(loaded, prompt, reference):
    context, questions = prompt
    method = make_method("topk_decode", k=10_000, n_sink=0, n_recent=0)
    out = generate_compressed(loaded, context, questions[0], method, NEW_TOKENS, return_logits=True)
    _same(out, reference)
    assert out.kv_bytes_kept == out.kv_bytes_full
    assert loaded.model.config._attn_implementation == "sdpa"  # restored


@pytest.mark.parametrize("name", ["snapkv", "streaming_llm", "knorm", "tova", "expected_attention"])
@pytest.mark.parametrize("ratio", [0.25, 0.6])
def test_kept_length_and_bytes(loaded, prompt, name, ratio):
    context, questions = prompt
    method = _method(name, ratio)
    cache = method.prefill(loaded.model, context)
    n_kept = max(1, int(CONTEXT_LEN * (1 - ratio)))  # kvpress.utils.compute_n_kept
    for layer in cache.layers:
        assert layer.keys.shape == (1, 2, n_kept, 16) and layer.values.shape == layer.keys.shape
    tensor_bytes = sum(
        t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values)
    )
    assert resident_bytes(cache) == tensor_bytes
    out = generate_compressed(loaded, context, questions[0], method, 2)
    assert out.kept_per_layer == [n_kept, n_kept]
    assert out.kv_bytes_kept == out.kv_bytes_resident == tensor_bytes
    assert out.kv_bytes_full == 2 * 2 * 2 * 16 * CONTEXT_LEN * 4


def test_streaming_llm_keeps_sinks_and_recent(loaded, prompt):
    context, _ = prompt
    full = make_method("none").prefill(loaded.model, context)
    kept = make_method("streaming_llm", ratio=0.5, n_sink=4).prefill(loaded.model, context)
    n_kept = int(CONTEXT_LEN * 0.5)
    positions = list(range(4)) + list(range(CONTEXT_LEN - (n_kept - 4), CONTEXT_LEN))
    for a, b in zip(full.layers, kept.layers, strict=True):
        for head in range(2):  # kvpress gathers in top-k order: match rows, not order
            match = (b.keys[0, head][:, None] == a.keys[0, head][None]).all(-1)  # (kept, L)
            assert (match.sum(1) == 1).all()
            found = match.float().argmax(1)
            assert sorted(found.tolist()) == positions
            assert torch.equal(a.values[0, head, found], b.values[0, head])


def test_pyramidkv_layer_budgets(loaded, prompt):
    from kvpress import PyramidKVPress

    context, questions = prompt
    method = _method("pyramidkv", 0.5)
    out = generate_compressed(loaded, context, questions[0], method, 3)
    press = PyramidKVPress(compression_ratio=0.5, window_size=8)
    layers = loaded.model.model.layers
    expected = [press.get_layer_budget(layer.self_attn, CONTEXT_LEN) for layer in layers]
    assert out.kept_per_layer == expected
    assert expected[0] > expected[1]  # a real pyramid, so the uneven-cache path ran
    assert out.kv_bytes_kept == out.kv_bytes_resident == sum(expected) * 2 * 2 * 16 * 4


def test_adakv_counts_non_masked_entries(loaded, prompt):
    context, questions = prompt
    out = generate_compressed(loaded, context, questions[0], _method("adakv", 0.5), 2)
    n_kept = int(CONTEXT_LEN * 0.5)
    assert out.kept_per_layer == [n_kept, n_kept]
    assert out.kv_bytes_kept == 2 * (2 * n_kept) * 16 * 4 * 2
    assert out.kv_bytes_resident == out.kv_bytes_full  # kvpress masks, it does not evict
    for layer in loaded.model.model.layers:  # masks released after generation
        assert getattr(layer.self_attn, "masked_key_indices", None) is None


def _stub(method: TopKDecode, groups: int) -> SimpleNamespace:
    return SimpleNamespace(_longctx_topk=method, layer_idx=0, num_key_value_groups=groups)


@pytest.mark.parametrize("use_faiss", [False, True])
def test_topk_attends_to_planted_key(use_faiss):
    gen = torch.Generator().manual_seed(0)
    length, dim = 16, 8
    key = 0.01 * torch.randn(1, 1, length, dim, generator=gen)  # one KV head, two query heads
    value = torch.randn(1, 1, length, dim, generator=gen)
    query = torch.randn(1, 2, 1, dim, generator=gen)
    key[0, 0, 5] = 3 * query[0, 0, 0]
    key[0, 0, 11] = 3 * query[0, 1, 0]
    method = TopKDecode(k=1, n_sink=0, n_recent=0, use_faiss=use_faiss)
    out, weights = topk_attention(_stub(method, 2), query, key, value, None, scaling=dim**-0.5)
    assert weights is None and out.shape == (1, 1, 2, dim)
    assert torch.allclose(out[0, 0, 0], value[0, 0, 5])
    assert torch.allclose(out[0, 0, 1], value[0, 0, 11])


# The three implementations of an exact step: torch with autograd, torch in place (no autograd,
# kernel off) and the fused CPU kernel (no autograd).
PATHS = {"autograd": (True, False), "in-place": (False, False), "kernel": (False, True)}


def _run_path(path: str, method: TopKDecode, *args, **kw):
    grad, method.kernel = PATHS[path]
    if method.kernel:
        require_kernel()
    with torch.set_grad_enabled(grad):
        out = topk_attention(*args, **kw)
    assert (method._scores is not None) is (path == "in-place")  # the path really taken
    return out


@pytest.mark.parametrize("path", list(PATHS))
def test_topk_matches_manual_selection(path):
    gen = torch.Generator().manual_seed(1)
    length, dim, k = 20, 8, 3
    key = torch.randn(1, 2, length, dim, generator=gen)
    value = torch.randn(1, 2, length, dim, generator=gen)
    query = torch.randn(1, 4, 1, dim, generator=gen)
    method = TopKDecode(k=k, n_sink=2, n_recent=3)
    stub = _stub(method, 2)
    out, _ = _run_path(path, method, stub, query, key, value, None, scaling=dim**-0.5)
    assert method._entries > 0
    for head in range(4):
        q, keys, vals = query[0, head, 0], key[0, head // 2], value[0, head // 2]
        scores = keys @ q
        middle = scores[2 : length - 3].topk(k).indices + 2
        chosen = torch.cat([torch.arange(2), middle, torch.arange(length - 3, length)])
        weights = torch.softmax(scores[chosen] * dim**-0.5, dim=0)
        assert torch.allclose(out[0, 0, head], weights @ vals[chosen], atol=1e-6)


def test_topk_paths_agree_with_a_padding_mask():
    gen = torch.Generator().manual_seed(2)
    b, length, dim = 2, 40, 8
    key = torch.randn(b, 2, length, dim, generator=gen)
    value = torch.randn(b, 2, length, dim, generator=gen)
    query = torch.randn(b, 4, 1, dim, generator=gen)
    mask = torch.ones(b, 1, 1, length, dtype=torch.bool)
    mask[1, ..., 3:9] = False  # left padding of the second row, inside the searched middle
    results = []
    for path in PATHS:
        method = TopKDecode(k=10, n_sink=2, n_recent=4)
        out, _ = _run_path(path, method, _stub(method, 2), query, key, value, mask, scaling=0.3)
        results.append((out, method._entries))
    for out, entries in results[1:]:
        torch.testing.assert_close(out, results[0][0], atol=1e-6, rtol=1e-5)
        assert entries == results[0][1]


def test_topk_decode_sparse_generation(loaded, prompt):
    context, questions = prompt
    exact = make_method("topk_decode", k=8, n_sink=2, n_recent=4)
    out = generate_compressed(loaded, context, questions[0], exact, NEW_TOKENS, return_logits=True)
    assert out.kv_bytes_kept == out.kv_bytes_full == out.kv_bytes_resident
    per_step = 2 * 2 * 2 * 16 * 4  # layers * kv_heads * (k+v) * head_dim * float32
    assert per_step * 8 <= out.kv_bytes_attended <= per_step * 2 * (8 + 2 + 4)
    flat = make_method("topk_decode", k=8, n_sink=2, n_recent=4, use_faiss=True)
    _same(generate_compressed(loaded, context, questions[0], flat, NEW_TOKENS, True), out)
    hnsw = make_method("topk_decode", k=8, use_faiss=True, faiss_index="hnsw")
    assert generate_compressed(loaded, context, questions[0], hnsw, 2).new_tokens >= 1
    assert loaded.model.config._attn_implementation == "sdpa"
    assert not hasattr(loaded.model.model.layers[0].self_attn, "_longctx_topk")


@pytest.mark.parametrize("name", DOCUMENTED_METHODS)
def test_every_method_generates(loaded, prompt, name):
    context, questions = prompt
    method = _method(name, 0.0 if name == "none" else 0.5)
    out = generate_compressed(loaded, context, questions[0], method, 3)
    assert 1 <= out.new_tokens <= 3 and isinstance(out.text, str)
    assert out.prompt_tokens == CONTEXT_LEN + len(questions[0]) and out.method == name
    assert 0 < out.kv_bytes_kept <= out.kv_bytes_full


@pytest.mark.parametrize(
    ("name", "kw"),
    [
        ("none", {}),
        ("snapkv", {}),
        ("snapkv", {"query_aware": True}),
        ("pyramidkv", {}),
        ("adakv", {}),
        ("topk_decode", {"k": 8}),
    ],
)
def test_generate_many_matches_single(loaded, prompt, name, kw):
    context, questions = prompt
    method = _method(name, 0.0 if name == "none" else 0.5, **kw)
    many = generate_many(loaded, context, questions, method, NEW_TOKENS, return_logits=True)
    assert len(many) == 2
    for question, result in zip(questions, many, strict=True):
        single = generate_compressed(loaded, context, question, method, NEW_TOKENS, True)
        _same(result, single)
        assert result.kept_per_layer == single.kept_per_layer


def test_query_aware_compresses_the_question(loaded, prompt, reference):
    context, questions = prompt
    q = questions[0]
    exact = generate_compressed(
        loaded, context, q, _method("snapkv", 0.0, query_aware=True), NEW_TOKENS, True
    )
    _same(exact, reference)
    n_pre = CONTEXT_LEN + len(q) - 1
    out = generate_compressed(loaded, context, q, _method("snapkv", 0.5, query_aware=True), 2)
    assert out.kept_per_layer == [int(n_pre * 0.5)] * 2
    assert out.kv_bytes_full == 2 * 2 * 2 * 16 * n_pre * 4


@pytest.mark.parametrize("name", ["pyramidkv", "adakv", "topk_decode"])
def test_eager_models_are_handled(tokenizer, prompt, name):
    model = make_tiny_llama(tokenizer, seed=0)
    model.set_attn_implementation("eager")
    eager = LoadedModel(model, tokenizer, "tiny-eager", 4096)
    context, questions = prompt
    kw = {"k": 8} if name == "topk_decode" else {}
    out = generate_compressed(eager, context, questions[0], _method(name, 0.5, **kw), 2)
    assert out.new_tokens >= 1
    assert model.config._attn_implementation == "eager"


def test_check_supported_rejects_gpt2(tokenizer, prompt):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=64, n_positions=32, n_embd=16, n_layer=1, n_head=2)
    gpt2 = GPT2LMHeadModel(config)
    for name in ["snapkv", "adakv", "topk_decode"]:
        with pytest.raises(UnsupportedModelError, match="GPT2LMHeadModel") as err:
            check_supported(gpt2, name)
        assert "LlamaForCausalLM" in str(err.value)
    check_supported(gpt2, "none")
    loaded = LoadedModel(gpt2.eval(), tokenizer, "tiny-gpt2", 32)
    with pytest.raises(UnsupportedModelError, match="GPT2LMHeadModel"):
        generate_compressed(loaded, [1, 2, 3], [4], make_method("knorm", ratio=0.5), 2)
    with pytest.raises(ValueError, match="question"):
        generate_many(loaded, [1, 2, 3], [[]], make_method("none"), 2)
