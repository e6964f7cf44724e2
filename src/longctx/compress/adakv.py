"""AdaKV: one budget shared by all heads of a layer, spent where scores are high (Feng et al. 2024).

Feng, Lv, Cao, Xie, Zhou. "Ada-KV: Optimizing KV Cache Eviction by Adaptive Budget Allocation
for Efficient LLM Inference." arXiv:2407.11550, 2024. Instead of keeping ``n`` positions in every
head, a layer keeps the ``kv_heads * n`` highest-scoring (head, position) pairs, so heads with
concentrated attention give budget to heads with diffuse attention; each head keeps at least
``alpha_safeguard * n`` positions.

Run through ``kvpress.AdaKVPress`` wrapping a kvpress ``ScorerPress`` (``inner``, default
Expected Attention). kvpress does not remove the pruned pairs (heads would have different
lengths): it records them in ``module.masked_key_indices`` and, while decoding, its patched
attention functions overwrite those keys with a fake key whose attention weight underflows to
zero. The cache tensors therefore keep their full shape ``(1, kv_heads, L, head_dim)`` in memory.
We count the kept bytes honestly as the non-masked entries:
``kept_bytes = (kv_heads * L - n_masked) * head_dim * 2 * element_size`` per layer, and
``kept_per_layer`` is the mean number of non-masked positions per KV head
(``max(1, int(L * (1 - ratio)))``); the resident bytes (reported separately) stay those of the
full cache. kvpress's patch lives in the ``sdpa``/flash functions, not in ``eager``, so with an
``eager`` model we switch to ``sdpa`` while pre-filling and decoding, then restore it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from longctx.compress.base import CompressionMethod, kv_geometry
from longctx.compress.press import KVPressMethod, sdpa_if_eager
from longctx.compress.registry import METHODS, register_method

# Inner methods whose kvpress press is a ScorerPress (AdaKVPress accepts only those).
INNER_METHODS = ("expected_attention", "snapkv", "knorm", "tova", "streaming_llm")


def _attention_modules(model: Any) -> list[Any]:
    return [m for name, m in model.named_modules() if name.endswith("self_attn")]


@register_method("adakv")
@dataclass
class AdaKV(KVPressMethod):
    """Head-adaptive budgets via ``kvpress.AdaKVPress`` (masking, not removal).

    Attributes:
        ratio: Fraction of the pre-filled (head, position) pairs masked out per layer.
        inner: Registered name of the scorer (one of ``INNER_METHODS``).
        inner_kwargs: Fields of the inner method (e.g. ``{"window_size": 32}`` for snapkv).
        alpha_safeguard: Minimum fraction of the per-head budget every head keeps.
    """

    inner: str = "expected_attention"
    inner_kwargs: dict[str, Any] = field(default_factory=dict)
    alpha_safeguard: float = 0.20

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.inner not in INNER_METHODS:
            raise ValueError(f"adakv: inner must be one of {INNER_METHODS}, got {self.inner!r}")

    def build_press(self, n_tokens: int) -> Any:
        """An ``AdaKVPress`` around the inner method's press."""
        from kvpress import AdaKVPress

        inner: CompressionMethod = METHODS[self.inner](ratio=self.ratio, **self.inner_kwargs)
        assert isinstance(inner, KVPressMethod)
        return AdaKVPress(press=inner.build_press(n_tokens), alpha_safeguard=self.alpha_safeguard)

    def _run_prefill(self, model: Any, input_ids: torch.Tensor, cache: Any) -> None:
        with sdpa_if_eager(model):
            super()._run_prefill(model, input_ids, cache)

    @contextmanager
    def decoding(self, model: Any) -> Iterator[None]:
        """Keep ``sdpa`` (where kvpress applies the mask) while decoding."""
        with sdpa_if_eager(model):
            yield

    def release(self, model: Any) -> None:
        """Forget the masked positions, so later uses of the model see unmasked caches."""
        for module in _attention_modules(model):
            if getattr(module, "masked_key_indices", None) is not None:
                module.masked_key_indices = None

    def _masked_per_layer(self, model: Any) -> list[int]:
        masked = []
        for module in _attention_modules(model):
            indices = getattr(module, "masked_key_indices", None)
            masked.append(0 if indices is None else int(indices[0].numel()))
        return masked

    def kept_per_layer(self, model: Any, cache: Any) -> list[int]:
        """Mean non-masked positions per KV head, per layer."""
        _, kv_heads, _ = kv_geometry(model)
        lengths = super().kept_per_layer(model, cache)
        masked = self._masked_per_layer(model)
        return [(kv_heads * n - m) // kv_heads for n, m in zip(lengths, masked, strict=True)]

    def kept_bytes(self, model: Any, cache: Any) -> int:
        """Bytes of the non-masked key and value entries."""
        _, kv_heads, head_dim = kv_geometry(model)
        masked = self._masked_per_layer(model)
        total = 0
        for layer, m in zip(cache.layers, masked, strict=True):
            entries = kv_heads * int(layer.keys.shape[-2]) - m
            total += 2 * entries * head_dim * layer.keys.element_size()
        return total
