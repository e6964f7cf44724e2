"""Shared plumbing for the methods that run a kvpress press (kvpress 0.5.5, used as is).

A press is a context manager that registers a forward hook on every attention layer; during the
pre-fill forward pass (and only then: the hook checks ``cache_position``) the hook scores the
layer's keys and values and replaces them in the cache by the kept subset. This mirrors
``KVPressTextGenerationPipeline._forward``: pre-fill with the press active, decode without it.

Attention weights. With ``sdpa`` the attention layers return no weights, and kvpress 0.5.5's
SnapKV, TOVA and PyramidKV recompute the attention of their observation window from the layer's
query projection (``SnapKVPress.compute_window_attention``); with ``eager`` they use the returned
weights. Both give the same scores, so no press here needs a particular attention implementation,
except AdaKV, which refuses ``eager`` (see :mod:`longctx.compress.adakv`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from longctx.compress.base import CompressionMethod


def clamp_window(window_size: int, n_tokens: int) -> int:
    """Observation window for a pre-fill of ``n_tokens``.

    kvpress asserts ``n_tokens > window_size`` (SnapKV, PyramidKV); a context shorter than the
    window would crash, so the window shrinks to ``n_tokens - 1`` (at least 1) instead.
    """
    return max(1, min(window_size, n_tokens - 1))


@contextmanager
def sdpa_if_eager(model: Any) -> Iterator[None]:
    """Run with ``sdpa`` when the model is set to ``eager``, restoring ``eager`` afterwards."""
    previous = model.config._attn_implementation
    if previous != "eager":
        yield
        return
    model.set_attn_implementation("sdpa")
    try:
        yield
    finally:
        model.set_attn_implementation(previous)


@dataclass
class KVPressMethod(CompressionMethod):
    """A :class:`CompressionMethod` that pre-fills with a kvpress press active.

    Subclasses implement :meth:`build_press`; everything else (pre-fill, accounting) is shared.
    The kept cache length of a scorer press is ``max(1, int(L * (1 - ratio)))`` per layer and
    head (``kvpress.utils.compute_n_kept``); ratio 0 returns the cache untouched.
    """

    def supported_models(self) -> tuple[type, ...] | None:
        """``kvpress.SUPPORTED_MODELS`` (Llama, Mistral, Phi3, Qwen2, Qwen3, Gemma3)."""
        from kvpress import SUPPORTED_MODELS

        return tuple(SUPPORTED_MODELS)

    def build_press(self, n_tokens: int) -> Any:
        """The kvpress press for a pre-fill of ``n_tokens`` tokens."""
        raise NotImplementedError

    def _run_prefill(self, model: Any, input_ids: torch.Tensor, cache: Any) -> None:
        press = self.build_press(int(input_ids.shape[1]))
        with press(model):
            super()._run_prefill(model, input_ids, cache)
