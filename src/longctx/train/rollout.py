"""Fast GRPO rollouts on one machine: the G samples of a prompt share one pre-fill.

TRL's transformers path (``GRPOTrainer._generate_single_turn``) calls ``model.generate`` on the
prompt repeated G times, so a long prompt is pre-filled G times. Here the prompt is pre-filled
once with batch 1, its KV cache is copied once into G-row buffers with room for the new tokens
(:class:`PreallocatedLayer`: each step writes in place instead of ``DynamicLayer``'s
concatenation, which copies the whole cache every step) and the G continuations are sampled in
parallel by a plain loop: temperature, top-k, then top-p filtering (the order of transformers'
logits processors), one token per row per step at the same position in every row (the rows
share the prompt, so no padding or attention mask is needed). A row stops at an EOS token,
which is kept; finished rows leave the batch (``batch_select_indices``). The steps run under
:func:`longctx.models.small_batch.small_batch_linear`: on CPU, G-row products are computed as
``(W @ x.T).T``, about twice as fast as ``F.linear`` for 2-16 rows.

The logits of every step equal those of decoding each row on its own pre-fill (the test checks
this with forced tokens), so the sampling distribution is that of ``model.generate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from longctx.models.small_batch import small_batch_linear


@dataclass(frozen=True)
class SamplingParams:
    """How continuations are sampled.

    Attributes:
        max_new_tokens: Most tokens per continuation (EOS included).
        temperature: Logits are divided by it.
        top_p: Nucleus threshold (1.0: off).
        top_k: Keep the k most likely tokens (0: off).
        eos_token_ids: Tokens that end a continuation.
    """

    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    eos_token_ids: tuple[int, ...] = ()


@dataclass
class Rollouts:
    """Continuations of one prompt.

    Attributes:
        completions: Token ids per row, up to and including the first EOS.
        logits: Per row, the ``(steps, vocab)`` float32 logits of each step (when requested).
    """

    completions: list[list[int]]
    logits: list[torch.Tensor] | None = None


def filter_logits(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Temperature-scaled logits with the tokens outside top-k / top-p set to ``-inf``."""
    logits = logits.float() / params.temperature
    if 0 < params.top_k < logits.size(-1):
        kth = torch.topk(logits, params.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1)  # ascending, as transformers does
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative <= 1.0 - params.top_p
        drop[..., -1] = False  # always keep the most likely token
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def sample(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """One token per row of ``(rows, vocab)`` logits."""
    probs = filter_logits(logits, params).softmax(dim=-1)
    return torch.multinomial(probs, 1).squeeze(-1)


def _step(model: Any, cache: Any, ids: torch.Tensor, start: int) -> torch.Tensor:
    """Feed ``ids`` (``(rows, n)``) at positions ``start...``; return the last logits."""
    positions = torch.arange(start, start + ids.size(1), device=ids.device).expand(ids.size(0), -1)
    out = model(
        input_ids=ids,
        position_ids=positions,
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    return out.logits[:, -1]


class PreallocatedLayer:
    """A cache layer with room for ``room`` more positions, written in place.

    ``DynamicLayer.update`` concatenates, copying the whole cache at every decoding step; this
    layer copies the pre-filled keys and values once into ``(rows, heads, length + room, dim)``
    buffers (broadcasting a batch-1 cache to ``rows``) and exposes views of the filled part.
    """

    is_sliding = False
    is_compileable = False

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, rows: int, room: int):
        rows_, heads, length, dim = keys.shape
        self.kbuf = keys.new_empty(rows, heads, length + room, dim)
        self.vbuf = values.new_empty(rows, heads, length + room, dim)
        self.kbuf[:, :, :length] = keys
        self.vbuf[:, :, :length] = values
        self.length = length
        self.is_initialized = True
        self.dtype, self.device = keys.dtype, keys.device
        self._views()

    def _views(self) -> None:
        self.keys = self.kbuf[:, :, : self.length]
        self.values = self.vbuf[:, :, : self.length]

    def update(self, key_states, value_states, cache_kwargs=None):
        end = self.length + key_states.shape[-2]
        self.kbuf[:, :, self.length : end] = key_states
        self.vbuf[:, :, self.length : end] = value_states
        self.length = end
        self._views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def get_mask_sizes(self, cache_position: torch.Tensor) -> tuple[int, int]:
        return self.length + cache_position.shape[0], 0

    def get_max_cache_shape(self) -> int:
        return -1

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.kbuf, self.vbuf = self.kbuf[indices], self.vbuf[indices]
        self._views()


def preallocate(cache: Any, rows: int, room: int) -> Any:
    """Turn a batch-1 (or ``rows``) ``DynamicCache`` into ``rows`` preallocated rows, in place."""
    cache.layers = [
        PreallocatedLayer(layer.keys, layer.values, rows, room) for layer in cache.layers
    ]
    return cache


@torch.no_grad()
def prefill(model: Any, prompt_ids: Sequence[int]) -> tuple[Any, torch.Tensor]:
    """Pre-fill one prompt with batch 1: ``(DynamicCache, next-token logits of shape (1, V))``."""
    from transformers import DynamicCache

    device = next(model.parameters()).device
    ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=device)
    cache = DynamicCache()
    return cache, _step(model, cache, ids, 0)


@torch.no_grad()
def decode(
    model: Any,
    cache: Any,
    logits: torch.Tensor,
    position: int,
    n: int,
    params: SamplingParams,
    forced: torch.Tensor | None = None,
    return_logits: bool = False,
) -> Rollouts:
    """Sample ``n`` continuations from a batch-1 cache and its next-token logits.

    Args:
        model: The causal LM (eval or train mode; no gradient is recorded).
        cache: A ``DynamicCache`` of batch 1 (made ``n`` preallocated rows here, in place).
        logits: ``(1, vocab)`` logits of the first new token.
        position: Position of the first new token (the tokens pre-filled, uncompressed).
        n: Continuations to sample.
        params: Sampling parameters.
        forced: ``(n, steps)`` tokens to feed instead of sampling (tests); EOS still ends a row.
        return_logits: Keep each row's per-step logits.
    """
    eos = torch.tensor(params.eos_token_ids or [-1], device=logits.device)
    preallocate(cache, n, params.max_new_tokens)
    logits = logits.expand(n, -1)
    active = torch.arange(n, device=logits.device)
    completions: list[list[int]] = [[] for _ in range(n)]
    kept: list[list[torch.Tensor]] = [[] for _ in range(n)]
    with small_batch_linear(model):  # G-row steps: the transposed product is ~2x faster on CPU
        for step in range(params.max_new_tokens):
            if return_logits:
                for row, row_logits in zip(active.tolist(), logits, strict=True):
                    kept[row].append(row_logits.float())
            tokens = forced[active, step] if forced is not None else sample(logits, params)
            for row, token in zip(active.tolist(), tokens.tolist(), strict=True):
                completions[row].append(token)
            done = torch.isin(tokens, eos)
            if step + 1 == params.max_new_tokens or bool(done.all()):
                break
            if bool(done.any()):
                keep = (~done).nonzero().squeeze(-1)
                cache.batch_select_indices(keep)
                active, tokens = active[keep], tokens[keep]
            logits = _step(model, cache, tokens.unsqueeze(-1), position + step)
    stacked = [torch.stack(rows) for rows in kept] if return_logits else None
    return Rollouts(completions, stacked)


def shared_prefill_rollouts(
    model: Any,
    prompt_ids: Sequence[int],
    n: int,
    params: SamplingParams,
    forced: torch.Tensor | None = None,
    return_logits: bool = False,
) -> Rollouts:
    """``n`` continuations of one prompt from a single pre-fill (see the module docstring)."""
    cache, logits = prefill(model, prompt_ids)
    return decode(model, cache, logits, len(prompt_ids), n, params, forced, return_logits)


def group_prompts(prompt_ids: Sequence[Sequence[int]]) -> list[tuple[list[int], int]]:
    """Runs of identical consecutive prompts as ``(prompt, count)`` (TRL repeats each G times)."""
    groups: list[tuple[list[int], int]] = []
    for ids in prompt_ids:
        ids = list(ids)
        if groups and groups[-1][0] == ids:
            groups[-1] = (ids, groups[-1][1] + 1)
        else:
            groups.append((ids, 1))
    return groups


def rollout_batch(
    model: Any, prompt_ids: Sequence[Sequence[int]], params: SamplingParams
) -> list[list[int]]:
    """Completions for a batch of prompts, one pre-fill per run of identical prompts."""
    completions: list[list[int]] = []
    for ids, count in group_prompts(prompt_ids):
        completions.extend(shared_prefill_rollouts(model, ids, count, params).completions)
    return completions
