"""The common interface of every KV-cache compression method, model checks and KV byte counts.

A method compresses the KV cache built while the context is pre-filled (``prefill``) and may
change how attention runs while the answer is decoded (``decoding``). Generation itself lives in
:mod:`longctx.compress.generate` and is the same for every method, so the methods only differ in
what they keep.

Query-agnostic vs query-aware. kvpress's ``KVPressTextGenerationPipeline`` pre-fills the context
alone with the press active and feeds the question afterwards on the compressed cache, so one
compressed cache serves every question about the context (query-agnostic; our default). kvpress's
evaluation obtains query-aware compression by moving the question into the context, so the press
sees the question while it scores the context. ``query_aware=True`` does the same here: the
compressed pre-fill covers ``context + question[:-1]``; only the last question token is fed after
compression, so that the first answer token is computed on the compressed cache (as in
kvpress, where the chat template's generation prompt plays that role). The question then cannot
be shared: ``generate_many`` pre-fills once per question for query-aware methods.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

# The decoder-only architectures kvpress 0.5.5 tests (``kvpress.presses.base_press``), by name,
# so that ``import longctx.compress`` does not import kvpress. Press methods check against
# ``kvpress.SUPPORTED_MODELS`` itself.
KVPRESS_MODEL_NAMES: tuple[str, ...] = (
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "Phi3ForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen3ForCausalLM",
    "Gemma3ForConditionalGeneration",
)


class UnsupportedModelError(ValueError):
    """A compression method was asked to run on an architecture it does not support."""


@dataclass
class CompressionMethod:
    """Base class of every compression method (a dataclass registered by ``name``).

    Attributes:
        name: Registry name, set by :func:`longctx.compress.register_method`.
        ratio: Fraction of the pre-filled KV pairs to remove, in ``[0, 1)``; ``0`` keeps all.
        query_aware: Compress ``context + question`` instead of the context alone (see the
            module docstring).
    """

    name: ClassVar[str] = ""
    ratio: float = 0.0
    query_aware: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio < 1.0:
            raise ValueError(f"{self.name}: ratio must be in [0, 1), got {self.ratio}")

    # -- model support -------------------------------------------------------------------------
    def supported_models(self) -> tuple[type, ...] | None:
        """Model classes this method runs on; ``None`` means any causal LM."""
        return None

    # -- pre-fill ------------------------------------------------------------------------------
    def split_prompt(
        self, context_ids: Sequence[int], question_ids: Sequence[int] | None = None
    ) -> tuple[list[int], list[int]]:
        """Split the prompt into the compressed pre-fill and the tail fed afterwards.

        Returns:
            ``(prefill_ids, tail_ids)``: the context and the question for query-agnostic methods;
            ``context + question[:-1]`` and ``question[-1:]`` for query-aware ones.
        """
        context, question = list(context_ids), list(question_ids or [])
        if self.query_aware and question:
            return context + question[:-1], question[-1:]
        return context, question

    def prefill(
        self, model: Any, context_ids: Sequence[int], question_ids: Sequence[int] | None = None
    ) -> Any:
        """Pre-fill the context with compression active.

        Args:
            model: A causal LM (``PreTrainedModel``) in eval mode.
            context_ids: Context token ids, length ``L``.
            question_ids: The question; used only when ``query_aware`` (its last token is left
                out, see :meth:`split_prompt`).

        Returns:
            The (compressed) ``DynamicCache``; layer ``i`` holds ``cache.layers[i].keys`` and
            ``.values`` of shape ``(1, kv_heads, kept_i, head_dim)``.
        """
        from transformers import DynamicCache

        check_supported(model, self)
        ids, _ = self.split_prompt(context_ids, question_ids)
        if not ids:
            raise ValueError("cannot pre-fill an empty context")
        input_ids = torch.tensor([ids], dtype=torch.long, device=model.device)
        cache = DynamicCache()
        with torch.inference_mode():
            self._run_prefill(model, input_ids, cache)
        return cache

    def _run_prefill(self, model: Any, input_ids: torch.Tensor, cache: Any) -> None:
        """One forward pass over ``input_ids`` (shape ``(1, L)``) filling ``cache``."""
        model(input_ids=input_ids, past_key_values=cache, use_cache=True, logits_to_keep=1)

    # -- decoding ------------------------------------------------------------------------------
    @contextmanager
    def decoding(self, model: Any) -> Iterator[None]:
        """Context manager active while the question and the answer are decoded (a no-op here)."""
        yield

    def release(self, model: Any) -> None:
        """Drop any per-model state left after generation (nothing by default)."""

    def attended_bytes(self) -> int | None:
        """Mean KV bytes read per decoding step, for methods that attend to a subset."""
        return None

    # -- accounting ----------------------------------------------------------------------------
    def kept_per_layer(self, model: Any, cache: Any) -> list[int]:
        """Cache positions kept per layer after pre-fill (the keys' sequence length)."""
        return [int(layer.keys.shape[-2]) for layer in cache.layers]

    def kept_bytes(self, model: Any, cache: Any) -> int:
        """Bytes of keys and values the method keeps (default: every resident tensor)."""
        return resident_bytes(cache)


def resident_bytes(cache: Any) -> int:
    """Bytes of the key and value tensors actually held by ``cache``."""
    return sum(
        layer.keys.numel() * layer.keys.element_size()
        + layer.values.numel() * layer.values.element_size()
        for layer in cache.layers
    )


def kv_geometry(model: Any) -> tuple[int, int, int]:
    """``(num_layers, kv_heads, head_dim)`` of the model's decoder, from its config."""
    config = model.config.get_text_config(decoder=True)
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return int(config.num_hidden_layers), int(kv_heads), int(head_dim)


def full_kv_bytes(model: Any, seq_len: int, element_size: int) -> int:
    """Bytes of an uncompressed cache: ``2 * layers * kv_heads * head_dim * seq_len * bytes``."""
    layers, kv_heads, head_dim = kv_geometry(model)
    return 2 * layers * kv_heads * head_dim * seq_len * element_size


def check_supported(model: Any, method: CompressionMethod | str) -> None:
    """Raise before any work if ``method`` cannot run on ``model``'s architecture.

    Args:
        model: The model (its class is checked with ``isinstance``).
        method: A method instance or a registered name.

    Raises:
        UnsupportedModelError: Naming the model class and the supported classes.
    """
    if isinstance(method, str):
        from longctx.compress.registry import make_method

        method = make_method(method)
    supported = method.supported_models()
    if supported is None or isinstance(model, supported):
        return
    names = ", ".join(cls.__name__ for cls in supported)
    raise UnsupportedModelError(
        f"compression method {method.name!r} does not support {type(model).__name__}; "
        f"supported model classes: {names}"
    )
