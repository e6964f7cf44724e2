"""Knorm: keep the keys with the smallest L2 norm (Devoto et al. 2024).

Devoto, Zhao, Scardapane, Minervini. "A Simple and Effective L2 Norm-Based Strategy for KV Cache
Compression." EMNLP 2024. arXiv:2406.11430. Keys with a low norm tend to receive high attention,
so the score of position ``j`` in KV head ``h`` is ``-||k_{h,j}||_2`` (keys of shape
``(1, kv_heads, L, head_dim)``, scores ``(1, kv_heads, L)``).

Run through ``kvpress.KnormPress``. Keeps ``max(1, int(L * (1 - ratio)))`` positions per KV head
and layer, chosen per head (each head keeps its own positions; all heads keep the same count, so
the cache stays rectangular). Query-agnostic by construction: the score ignores the queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from longctx.compress.press import KVPressMethod
from longctx.compress.registry import register_method


@register_method("knorm")
@dataclass
class Knorm(KVPressMethod):
    """Key-norm eviction via ``kvpress.KnormPress``.

    Attributes:
        ratio: Fraction of the pre-filled KV pairs removed.
    """

    def build_press(self, n_tokens: int) -> Any:
        """A ``KnormPress`` at this ratio (``n_tokens`` is unused)."""
        from kvpress import KnormPress

        return KnormPress(compression_ratio=self.ratio)
