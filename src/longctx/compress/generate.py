"""Greedy generation on a compressed KV cache, one pre-fill per context.

The protocol follows kvpress's ``KVPressTextGenerationPipeline``: pre-fill the context once with
the method's compression active, then, for each question, feed the question ids on the
(compressed) cache at positions ``L, L + 1, ...`` (``L`` = tokens pre-filled, not the compressed
length, so RoPE positions stay those of the uncompressed sequence) and decode greedily until EOS
or ``max_new_tokens``. After each question the cache is cropped back, per layer, to its length
after pre-fill, so the next question sees the same compressed context.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from longctx.compress.base import CompressionMethod, check_supported, full_kv_bytes, resident_bytes
from longctx.models.generate import Generation
from longctx.models.loader import LoadedModel


@dataclass
class CompressedGeneration(Generation):
    """One answer generated on a compressed cache.

    Attributes:
        kv_bytes_kept: Key and value bytes the method keeps after pre-fill (AdaKV: non-masked
            entries; topk_decode: the full cache).
        kv_bytes_full: Bytes of an uncompressed cache of the pre-filled length
            (``2 * layers * kv_heads * head_dim * L * element_size``).
        kept_per_layer: Positions kept per layer after pre-fill (AdaKV: mean per KV head).
        kv_bytes_resident: Bytes of the key and value tensors actually held in memory.
        kv_bytes_attended: topk_decode only: mean key and value bytes attended per single-token
            decoding step, all layers (``None`` for other methods or when no such step ran).
        prefill_seconds: Wall time of the (possibly shared) pre-fill, included in ``seconds``.
        method: Registry name of the method.
        token_ids: The generated ids (EOS included when reached).
        logits: ``(new_tokens, vocab)`` float32 logits of each greedy step, when requested.
    """

    kv_bytes_kept: int
    kv_bytes_full: int
    kept_per_layer: list[int]
    kv_bytes_resident: int = 0
    kv_bytes_attended: int | None = None
    prefill_seconds: float = 0.0
    method: str = ""
    token_ids: list[int] = field(default_factory=list)
    logits: torch.Tensor | None = None


def _eos_ids(loaded: LoadedModel) -> set[int]:
    eos = loaded.model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
    if loaded.tokenizer.eos_token_id is not None:
        ids.add(int(loaded.tokenizer.eos_token_id))
    return ids


def _feed(model: Any, cache: Any, ids: Sequence[int], start: int) -> torch.Tensor:
    """Run ``ids`` at positions ``start...`` on ``cache``; return the last logits ``(vocab,)``.

    When layers hold caches of different lengths (PyramidKV) one causal mask cannot serve them
    all, so the tokens go one at a time (single-token steps need no mask).
    """
    uniform = len({int(layer.keys.shape[-2]) for layer in cache.layers}) == 1
    chunks = [list(ids)] if uniform else [[token] for token in ids]
    device = model.device
    for chunk in chunks:
        out = model(
            input_ids=torch.tensor([chunk], dtype=torch.long, device=device),
            position_ids=torch.arange(start, start + len(chunk), device=device).unsqueeze(0),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        start += len(chunk)
    return out.logits[0, -1].float()


def _crop(cache: Any, lengths: list[int]) -> None:
    for layer, length in zip(cache.layers, lengths, strict=True):
        layer.keys = layer.keys[:, :, :length]
        layer.values = layer.values[:, :, :length]


@dataclass
class _Prefilled:
    cache: Any
    n_prefilled: int
    lengths: list[int]
    stats: dict[str, Any]
    seconds: float


def _prefill(
    loaded: LoadedModel,
    context_ids: Sequence[int],
    question_ids: Sequence[int] | None,
    method: CompressionMethod,
) -> _Prefilled:
    start = time.perf_counter()
    prefill_ids, _ = method.split_prompt(context_ids, question_ids)
    cache = method.prefill(loaded.model, context_ids, question_ids)
    element_size = cache.layers[0].keys.element_size()
    stats = {
        "kv_bytes_kept": method.kept_bytes(loaded.model, cache),
        "kv_bytes_full": full_kv_bytes(loaded.model, len(prefill_ids), element_size),
        "kept_per_layer": method.kept_per_layer(loaded.model, cache),
        "kv_bytes_resident": resident_bytes(cache),
    }
    lengths = [int(layer.keys.shape[-2]) for layer in cache.layers]
    return _Prefilled(cache, len(prefill_ids), lengths, stats, time.perf_counter() - start)


def _answer(
    loaded: LoadedModel,
    pre: _Prefilled,
    tail_ids: list[int],
    method: CompressionMethod,
    max_new_tokens: int,
    return_logits: bool,
    prompt_tokens: int,
    ignore_eos: bool = False,
) -> CompressedGeneration:
    start = time.perf_counter()
    model, eos = loaded.model, _eos_ids(loaded)
    generated: list[int] = []
    step_logits: list[torch.Tensor] = []
    if max_new_tokens > 0:
        with method.decoding(model):
            logits = _feed(model, pre.cache, tail_ids, pre.n_prefilled)
            position = pre.n_prefilled + len(tail_ids)
            while True:
                if return_logits:
                    step_logits.append(logits)
                token = int(logits.argmax())
                generated.append(token)
                if (token in eos and not ignore_eos) or len(generated) >= max_new_tokens:
                    break
                logits = _feed(model, pre.cache, [token], position)
                position += 1
        attended = method.attended_bytes()
        _crop(pre.cache, pre.lengths)
    else:
        attended = None
    text = loaded.tokenizer.decode(generated, skip_special_tokens=True)
    return CompressedGeneration(
        text=text,
        prompt_tokens=prompt_tokens,
        new_tokens=len(generated),
        seconds=pre.seconds + time.perf_counter() - start,
        kv_bytes_attended=attended,
        prefill_seconds=pre.seconds,
        method=method.name,
        token_ids=generated,
        logits=torch.stack(step_logits) if step_logits else None,
        **pre.stats,
    )


@torch.inference_mode()
def generate_compressed(
    loaded: LoadedModel,
    context_ids: Sequence[int],
    question_ids: Sequence[int],
    method: CompressionMethod,
    max_new_tokens: int,
    return_logits: bool = False,
    ignore_eos: bool = False,
) -> CompressedGeneration:
    """Pre-fill ``context_ids`` with ``method``, then answer ``question_ids`` greedily.

    Args:
        loaded: The model and tokenizer.
        context_ids: Context token ids (the compressed part), length ``L``.
        question_ids: Question ids fed after compression, at least one token (query-aware
            methods compress all but the last of them with the context).
        method: A :class:`CompressionMethod` (see ``make_method``).
        max_new_tokens: Upper bound on generated tokens (EOS stops earlier).
        return_logits: Keep the ``(new_tokens, vocab)`` logits of the greedy steps.
        ignore_eos: Generate exactly ``max_new_tokens`` (for timing equal work).

    Raises:
        UnsupportedModelError: Before any work, when the architecture is not supported.
    """
    return generate_many(
        loaded, context_ids, [question_ids], method, max_new_tokens, return_logits, ignore_eos
    )[0]


@torch.inference_mode()
def generate_many(
    loaded: LoadedModel,
    context_ids: Sequence[int],
    questions: Sequence[Sequence[int]],
    method: CompressionMethod,
    max_new_tokens: int,
    return_logits: bool = False,
    ignore_eos: bool = False,
) -> list[CompressedGeneration]:
    """Answer several questions about one context with a single compressed pre-fill.

    The cache is cropped back to its post-pre-fill length after each question. Query-aware
    methods compress a different cache per question, so they pre-fill once per question.
    Each result's ``seconds`` includes the shared pre-fill (``prefill_seconds``).

    Returns:
        One :class:`CompressedGeneration` per question, in order.
    """
    check_supported(loaded.model, method)
    if any(len(question) == 0 for question in questions):
        raise ValueError("every question needs at least one token (e.g. a separator)")
    results: list[CompressedGeneration] = []
    pre: _Prefilled | None = None
    try:
        for question in questions:
            if pre is None or method.query_aware:
                pre = _prefill(loaded, context_ids, question, method)
            _, tail = method.split_prompt(context_ids, question)
            prompt_tokens = len(context_ids) + len(question)
            results.append(
                _answer(
                    loaded,
                    pre,
                    tail,
                    method,
                    max_new_tokens,
                    return_logits,
                    prompt_tokens,
                    ignore_eos,
                )
            )
    finally:
        method.release(loaded.model)
    return results
