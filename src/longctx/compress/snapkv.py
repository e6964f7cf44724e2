"""SnapKV: keep what the last window of the prompt attends to (Li et al. 2024).

Li, Huang, Yang, Venkitesh, Locatelli, Ye, Cai, Lewis, Chen. "SnapKV: LLM Knows What You are
Looking for Before Generation." NeurIPS 2024. arXiv:2404.14469. The attention of the last
``window_size`` prompt tokens (the observation window) predicts which positions generation needs.

Run through ``kvpress.SnapKVPress``: for each KV head the score of position ``j`` is the
attention of the window queries to ``j`` (shape ``(1, heads, window, L - window)``), averaged
over the window, smoothed by 1-D average pooling (``kernel_size``) and averaged over the query
heads sharing the KV head; the window itself is always kept. Keeps
``max(1, int(L * (1 - ratio)))`` positions per KV head and layer. With ``sdpa`` kvpress
recomputes the window attention from the layer's query projection, so no ``eager`` is needed.

Query-agnostic by default, the window is the end of the context; with ``query_aware=True`` the
window covers the question, as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from longctx.compress.press import KVPressMethod, clamp_window
from longctx.compress.registry import register_method


@register_method("snapkv")
@dataclass
class SnapKV(KVPressMethod):
    """Observation-window eviction via ``kvpress.SnapKVPress``.

    Attributes:
        ratio: Fraction of the pre-filled KV pairs removed.
        window_size: Observation window (kvpress default 64); shrunk to ``L - 1`` for a pre-fill
            of ``L <= window_size`` tokens, which kvpress would reject.
        kernel_size: Width of the average pooling over scores.
    """

    window_size: int = 64
    kernel_size: int = 5

    def build_press(self, n_tokens: int) -> Any:
        """A ``SnapKVPress`` whose window fits a pre-fill of ``n_tokens``."""
        from kvpress import SnapKVPress

        return SnapKVPress(
            compression_ratio=self.ratio,
            window_size=clamp_window(self.window_size, n_tokens),
            kernel_size=self.kernel_size,
        )
