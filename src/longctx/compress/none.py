"""No compression: the reference every other method is compared against.

The full KV cache of the context is kept, shape ``(1, kv_heads, L, head_dim)`` per layer for
keys and for values, and decoding attends to all of it. Generation runs through the same
pre-fill / question / greedy loop as the compressed methods, so differences between ``none`` and
a method at ``ratio > 0`` come from the compression alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from longctx.compress.base import CompressionMethod
from longctx.compress.registry import register_method


@register_method("none")
@dataclass
class NoCompression(CompressionMethod):
    """Keep every KV pair; ``ratio`` must stay 0.

    Runs on any causal LM that accepts ``past_key_values`` and ``position_ids`` (no model check).
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.ratio != 0:
            raise ValueError(f"'none' keeps the whole cache; ratio must be 0, got {self.ratio}")
