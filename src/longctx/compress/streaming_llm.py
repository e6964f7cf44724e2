"""StreamingLLM: keep the first ``n_sink`` tokens and the most recent ones (Xiao et al. 2023).

Xiao, Tian, Chen, Han, Lewis. "Efficient Streaming Language Models with Attention Sinks."
ICLR 2024. arXiv:2309.17453. The first tokens act as attention sinks; together with a window of
recent tokens they preserve most of the attention mass.

Run through ``kvpress.StreamingLLMPress``. Of the ``L`` pre-filled positions it keeps
``n = max(1, int(L * (1 - ratio)))``: positions ``[0, n_sink)`` and the last ``n - n_sink``
positions, identically in every layer and head. As in kvpress without ``KeyRerotationPress``,
the kept keys keep their original RoPE positions (the paper re-rotates them to be contiguous);
the question and answer continue at position ``L``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from longctx.compress.press import KVPressMethod
from longctx.compress.registry import register_method


@register_method("streaming_llm")
@dataclass
class StreamingLLM(KVPressMethod):
    """Sink tokens plus a recent window via ``kvpress.StreamingLLMPress``.

    Attributes:
        ratio: Fraction of the pre-filled KV pairs removed.
        n_sink: Leading tokens always kept (kvpress requires ``L > n_sink``).
    """

    n_sink: int = 4

    def build_press(self, n_tokens: int) -> Any:
        """A ``StreamingLLMPress``; raises if the pre-fill is not longer than ``n_sink``."""
        from kvpress import StreamingLLMPress

        if self.ratio > 0 and n_tokens <= self.n_sink:
            raise ValueError(f"streaming_llm needs more than n_sink={self.n_sink} tokens")
        return StreamingLLMPress(compression_ratio=self.ratio, n_sink=self.n_sink)
