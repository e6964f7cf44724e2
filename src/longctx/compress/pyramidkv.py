"""PyramidKV: SnapKV scores with a per-layer budget shrinking with depth (Cai et al. 2024).

Cai, Zhang, Gao, Liu, Liu, Lu, Xiong, Dong, Chang, Hu, Xiao. "PyramidKV: Dynamic KV Cache
Compression based on Pyramidal Information Funneling." arXiv:2406.02069, 2024. Lower layers
attend broadly and get more cache; upper layers concentrate attention and get less.

Run through ``kvpress.PyramidKVPress``: positions are scored as in SnapKV; layer ``i`` of ``N``
keeps ``round(max_num - i * (max_num - min_num) / (N - 1))`` positions, where ``max_num`` and
``min_num`` follow from ``window_size``, ``beta`` and the overall budget ``L * (1 - ratio)``
(``PyramidKVPress.get_layer_budget``; the mean over layers is ``L * (1 - ratio)``). When the
pyramid is infeasible (short contexts) kvpress falls back to ``max(1, round(L * (1 - ratio)))``
per layer. Layers therefore hold caches of different lengths. A single causal mask cannot fit
layers of different lengths, so the generation helper feeds the question one token at a time
(single-token ``sdpa`` steps need no mask), and an ``eager`` model, whose mask would have the
first layer's length, is switched to ``sdpa`` while decoding.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from longctx.compress.press import KVPressMethod, clamp_window, sdpa_if_eager
from longctx.compress.registry import register_method


@register_method("pyramidkv")
@dataclass
class PyramidKV(KVPressMethod):
    """Pyramid-shaped per-layer budgets via ``kvpress.PyramidKVPress``.

    Attributes:
        ratio: Fraction of the pre-filled KV pairs removed (on average over layers).
        window_size: SnapKV observation window, also the pyramid's floor; shrunk to ``L - 1``
            for short pre-fills.
        kernel_size: Width of the average pooling over scores.
        beta: Steepness of the pyramid (larger: more cache in low layers).
    """

    window_size: int = 64
    kernel_size: int = 5
    beta: int = 20

    def build_press(self, n_tokens: int) -> Any:
        """A ``PyramidKVPress`` whose window fits a pre-fill of ``n_tokens``."""
        from kvpress import PyramidKVPress

        return PyramidKVPress(
            compression_ratio=self.ratio,
            window_size=clamp_window(self.window_size, n_tokens),
            kernel_size=self.kernel_size,
            beta=self.beta,
        )

    @contextmanager
    def decoding(self, model: Any) -> Iterator[None]:
        """Decode with ``sdpa``: single-token steps then need no mask across uneven layers."""
        with sdpa_if_eager(model):
            yield
