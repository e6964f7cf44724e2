"""TOVA: keep the tokens the last query attends to most (Oren et al. 2024).

Oren, Hassid, Yarden, Adi, Schwartz. "Transformers are Multi-State RNNs." EMNLP 2024.
arXiv:2401.06104. Token Omission Via Attention scores each cached position by the attention the
last token pays it.

Run through ``kvpress.TOVAPress``: the score of position ``j`` is the softmax attention of the
last pre-filled token to ``j`` averaged over all query heads (so every KV head keeps the same
positions, shape ``(1, kv_heads, L)`` after repetition); the last token itself is always kept.
With ``sdpa`` kvpress recomputes that attention row from the layer's query projection. Keeps
``max(1, int(L * (1 - ratio)))`` positions per layer. Unlike the paper's streaming eviction it
compresses once, after the pre-fill.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from longctx.compress.press import KVPressMethod
from longctx.compress.registry import register_method


@register_method("tova")
@dataclass
class TOVA(KVPressMethod):
    """Last-token attention eviction via ``kvpress.TOVAPress``.

    Attributes:
        ratio: Fraction of the pre-filled KV pairs removed.
    """

    def build_press(self, n_tokens: int) -> Any:
        """A ``TOVAPress`` at this ratio (``n_tokens`` is unused)."""
        from kvpress import TOVAPress

        return TOVAPress(compression_ratio=self.ratio)
