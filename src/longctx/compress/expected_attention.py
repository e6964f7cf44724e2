"""Expected Attention: keep the keys future queries are expected to attend to (Devoto et al. 2025).

Devoto, Jeblick, Jégou. "Expected Attention: KV Cache Compression by Estimating Attention from
Future Queries Distribution." arXiv:2510.00636, 2025. Queries are modelled as a Gaussian whose
mean ``mu`` and covariance ``Sigma`` (shape ``(1, heads, head_dim[, head_dim])``) come from the
pre-fill's queries (after the first ``n_sink`` positions) and are rotated by RoPE averaged over
the next ``n_future_positions`` positions. The expected attention to key ``k`` is then
``exp(mu.k / sqrt(d) + k^T Sigma k / (2 d))``, normalised over the positions, averaged over the
query heads sharing a KV head, and (``use_vnorm``) multiplied by ``||v||``.

Run through ``kvpress.ExpectedAttentionPress``. Keeps ``max(1, int(L * (1 - ratio)))`` positions
per KV head and layer, the first ``n_sink`` positions always among them. Query-agnostic: it
needs no question, which makes it the natural inner scorer for :mod:`longctx.compress.adakv`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from longctx.compress.press import KVPressMethod
from longctx.compress.registry import register_method


@register_method("expected_attention")
@dataclass
class ExpectedAttention(KVPressMethod):
    """Expected-attention eviction via ``kvpress.ExpectedAttentionPress``.

    Attributes:
        ratio: Fraction of the pre-filled KV pairs removed.
        n_future_positions: Future positions whose RoPE rotations are averaged.
        n_sink: Leading positions excluded from the statistics and always kept.
        use_covariance: Include the query covariance term.
        use_vnorm: Multiply scores by the value norms.
        epsilon: Added to scores before the value-norm rescaling.
    """

    n_future_positions: int = 512
    n_sink: int = 4
    use_covariance: bool = True
    use_vnorm: bool = True
    epsilon: float = 0.0

    def build_press(self, n_tokens: int) -> Any:
        """An ``ExpectedAttentionPress``; raises if the pre-fill is not longer than ``n_sink``."""
        from kvpress import ExpectedAttentionPress

        if self.ratio > 0 and n_tokens <= self.n_sink:
            raise ValueError(f"expected_attention needs more than n_sink={self.n_sink} tokens")
        return ExpectedAttentionPress(
            compression_ratio=self.ratio,
            n_future_positions=self.n_future_positions,
            n_sink=self.n_sink,
            use_covariance=self.use_covariance,
            use_vnorm=self.use_vnorm,
            epsilon=self.epsilon,
        )
