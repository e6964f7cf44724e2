"""The fused CPU kernel of topk_decode against the torch implementation, and its build fallback."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from longctx.compress import topk_kernel
from longctx.compress.topk_decode import TopKDecode, topk_attention
from tests.conftest import require_kernel


def _step(kernel_on: bool, query, key, value, mask=None, **budget):
    """One decoding step through topk_attention; returns (output, attended bytes, path used)."""
    method = TopKDecode(kernel=kernel_on, **budget)
    stub = SimpleNamespace(_longctx_topk=method, layer_idx=0)
    with torch.no_grad():
        out, _ = topk_attention(stub, query, key, value, mask, scaling=key.shape[-1] ** -0.5)
    return out, method._entries, "torch" if method._scores is not None else "kernel"


CASES = [  # batch, kv heads, groups, length, head size, budget (k, n_sink, n_recent)
    (1, 3, 3, 4096, 64, {"ratio": 0.5}),
    (1, 3, 3, 700, 64, {"k": 1, "n_sink": 0, "n_recent": 0}),
    (2, 2, 4, 300, 128, {"k": 37, "n_sink": 3, "n_recent": 5}),
    (1, 4, 1, 129, 32, {"k": 50, "n_sink": 4, "n_recent": 64}),
    (3, 1, 8, 50, 16, {"k": 20, "n_sink": 0, "n_recent": 1}),
    (1, 2, 2, 70, 8, {"k": 3, "n_sink": 0, "n_recent": 60}),  # a mostly recent window
]


@pytest.mark.parametrize("case", CASES, ids=[str(c[:5]) for c in CASES])
def test_kernel_equals_torch_path(case):
    require_kernel()
    b, n_kv, groups, length, dim, budget = case
    gen = torch.Generator().manual_seed(length)
    # Keys and values are views into a longer cache, as a pre-allocated cache would give.
    key = torch.randn(b, n_kv, length + 7, dim, generator=gen)[:, :, :length]
    value = torch.randn(b, n_kv, length + 7, dim, generator=gen)[:, :, 3 : length + 3]
    query = torch.randn(b, n_kv * groups, 1, dim, generator=gen)
    ref, ref_bytes, ref_path = _step(False, query, key, value, **budget)
    out, out_bytes, path = _step(True, query, key, value, **budget)
    assert (ref_path, path) == ("torch", "kernel")
    torch.testing.assert_close(out, ref, atol=2e-6, rtol=1e-5)
    assert out_bytes == ref_bytes


def test_kernel_keeps_every_tie_at_the_threshold():
    require_kernel()
    gen = torch.Generator().manual_seed(0)
    length, dim = 64, 16
    key = 0.1 * torch.randn(1, 1, length, dim, generator=gen)
    key[0, 0, 10:20] = torch.randn(dim, generator=gen)  # ten identical keys: ten tied scores
    value = torch.randn(1, 1, length, dim, generator=gen)
    query = key[0, 0, 10].reshape(1, 1, 1, dim).clone()  # the tied keys score highest
    ref, ref_bytes, _ = _step(False, query, key, value, k=4, n_sink=0, n_recent=0)
    out, out_bytes, path = _step(True, query, key, value, k=4, n_sink=0, n_recent=0)
    assert path == "kernel"
    per_position = 2 * dim * 4
    assert out_bytes == ref_bytes == 10 * per_position  # all ten ties kept, not four
    torch.testing.assert_close(out, ref, atol=2e-6, rtol=1e-5)


def test_kernel_with_additive_mask():
    require_kernel()
    gen = torch.Generator().manual_seed(3)
    b, length, dim = 2, 90, 32
    key = torch.randn(b, 2, length, dim, generator=gen)
    value = torch.randn(b, 2, length, dim, generator=gen)
    query = torch.randn(b, 6, 1, dim, generator=gen)
    mask = torch.zeros(b, 1, 1, length)
    mask[0, ..., :12] = float("-inf")  # left padding
    mask[1, ..., 40:45] = -2.0  # a plain additive bias
    ref, ref_bytes, _ = _step(False, query, key, value, mask, k=30, n_sink=4, n_recent=8)
    out, out_bytes, path = _step(True, query, key, value, mask, k=30, n_sink=4, n_recent=8)
    assert path == "kernel"
    torch.testing.assert_close(out, ref, atol=2e-6, rtol=1e-5)
    assert out_bytes == ref_bytes


def test_shapes_without_a_compiled_kernel_use_torch():
    kernel = require_kernel()
    assert kernel.supports(3, 64) and not kernel.supports(3, 48) and not kernel.supports(9, 64)
    gen = torch.Generator().manual_seed(4)
    key = torch.randn(1, 1, 40, 48, generator=gen)
    value = torch.randn(1, 1, 40, 48, generator=gen)
    query = torch.randn(1, 2, 1, 48, generator=gen)
    _, _, path = _step(True, query, key, value, k=5, n_recent=2)
    assert path == "torch"


def test_failed_build_warns_and_falls_back(monkeypatch, tmp_path):
    import torch.utils.cpp_extension as cpp_extension

    def broken(**_):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(cpp_extension, "load", broken)
    monkeypatch.setenv("LONGCTX_KERNEL_DIR", str(tmp_path))
    topk_kernel.load_topk_kernel.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="no compiler here"):
            assert topk_kernel.load_topk_kernel() is None
        gen = torch.Generator().manual_seed(5)
        key, value = torch.randn(2, 1, 1, 30, 8, generator=gen)
        query = torch.randn(1, 2, 1, 8, generator=gen)
        ref, _, _ = _step(False, query, key, value, k=5, n_recent=2)
        out, _, path = _step(True, query, key, value, k=5, n_recent=2)
        assert path == "torch" and torch.equal(out, ref)
    finally:
        topk_kernel.load_topk_kernel.cache_clear()


def test_kernel_can_be_switched_off_and_builds_per_cpu(monkeypatch, tmp_path):
    monkeypatch.setenv("LONGCTX_TOPK_KERNEL", "0")
    topk_kernel.load_topk_kernel.cache_clear()
    try:
        assert topk_kernel.load_topk_kernel() is None
    finally:
        topk_kernel.load_topk_kernel.cache_clear()
    monkeypatch.setenv("LONGCTX_KERNEL_DIR", str(tmp_path))
    first = topk_kernel.kernel_build_dir()
    assert first.parent == tmp_path and first.name.startswith("topk_")
    monkeypatch.setattr(topk_kernel, "_cpu_signature", lambda: "another cpu")
    assert topk_kernel.kernel_build_dir() != first
