"""The few-row linear product equals ``F.linear`` and is switched on and off cleanly."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from longctx.models.small_batch import few_row_linear, small_batch_linear


@pytest.mark.parametrize("shape", [(1, 32), (2, 32), (5, 1, 32), (3, 4, 32), (17, 32)])
@pytest.mark.parametrize("bias", [True, False])
def test_few_row_linear_equals_linear(shape, bias):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g)
    w = torch.randn(48, 32, generator=g)
    b = torch.randn(48, generator=g) if bias else None
    with torch.no_grad():
        out = few_row_linear(x, w, b)
    assert out.shape == (*shape[:-1], 48)
    assert out.is_contiguous()  # SDPA's fused kernel needs a contiguous last dimension
    torch.testing.assert_close(out, F.linear(x, w, b), atol=1e-5, rtol=1e-5)


def test_gradient_recording_keeps_the_plain_product():
    layer = nn.Linear(8, 4)
    x = torch.randn(3, 8, requires_grad=True)
    with small_batch_linear(layer):
        out = layer(x)
    out.sum().backward()
    assert x.grad is not None and layer.weight.grad is not None


def test_switch_covers_every_linear_and_is_undone(tokenizer, monkeypatch):
    from longctx.models import small_batch
    from tests.conftest import make_tiny_llama

    model = make_tiny_llama(tokenizer, seed=0)
    linears = [m for m in model.modules() if type(m) is nn.Linear]
    plain_calls, plain = [], F.linear

    def counting_linear(*args):
        plain_calls.append(1)
        return plain(*args)

    monkeypatch.setattr(small_batch.F, "linear", counting_linear)
    ids = torch.randint(100, 5000, (4, 1), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        plain_calls.clear()
        with small_batch_linear(model):
            assert all("forward" in m.__dict__ for m in linears)
            fast = model(input_ids=ids).logits  # 4 rows: the transposed product everywhere
            assert plain_calls == []
            model(input_ids=ids[:1])  # one row: F.linear
            assert len(plain_calls) == len(linears)
        assert not any("forward" in m.__dict__ for m in linears)
    torch.testing.assert_close(fast, expected, atol=1e-5, rtol=1e-5)
