"""Compression-aware GRPO, and GRPO log-probabilities from one prompt pass per group.

With ``train_compress: METHOD`` the policy never sees the full prompt cache. Each prompt is split
at its last ``"\\n\\nQuestion:"`` into context and question (the protocol of
:mod:`longctx.compress.generate`, so training matches ``longctx eval --compress``); the context
is pre-filled with the method active (:meth:`CompressionMethod.prefill`; query-aware methods
compress ``context + question[:-1]``), the rest of the prompt is fed on the compressed cache at
its uncompressed positions, and the G completions are sampled from there
(:func:`longctx.train.rollout.decode`).

Gradient choice. The log-probabilities of the GRPO loss (and of the reference policy for the KL
term) are computed the same way: the compressed prompt cache is built under ``no_grad`` by the
model being scored (for the reference: adapters disabled), then the prompt tail and the
completion are run *with* gradient on top of it. Their values are exactly the policy's
probabilities on the compressed cache; the gradient flows through everything the completion
computes (its queries, keys, values and MLPs) but not through the cached prompt keys/values or
through which entries the press keeps (a discrete choice with no gradient anyway). So the loss
trains the model to answer from what compression keeps, at the cost of one extra no-grad
pre-fill per scoring pass; the gradient pass covers only the completion, so it needs no
gradient checkpointing (which is switched off there: it would drop the cache).

Shared prompt pass (no compression, ``shared_prefill`` without gradient checkpointing). TRL runs
the whole ``prompt + completion`` of each of the G rows through the model; here the prompt
(all but its last token) is run once per group *with* gradient, its cache repeated to the rows
(``expand``, whose backward sums the rows' gradients) and only ``last prompt token +
completion`` is run per row. Values and gradients are those of TRL's computation (the test
checks both); the prompt's forward and backward cost drops G-fold. Gradient checkpointing drops
caches inside the layers, so with it TRL's computation is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from longctx.compress.base import CompressionMethod
from longctx.train.rollout import Rollouts, SamplingParams, _step, decode

QUESTION_MARKER = "\n\nQuestion:"


def split_question(
    prompt_ids: Sequence[int], marker_ids: Sequence[int]
) -> tuple[list[int], list[int]]:
    """``(context, question)`` split at the last occurrence of ``marker_ids``.

    Without the marker the question is the last prompt token (everything else is compressed).
    """
    ids, m = list(prompt_ids), list(marker_ids)
    for start in range(len(ids) - len(m), 0, -1):
        if m and ids[start : start + len(m)] == m:
            return ids[:start], ids[start:]
    return ids[:-1], ids[-1:]


@dataclass
class PromptCache:
    """A pre-filled prompt (compressed or not), reusable for any number of rows.

    Attributes:
        layers: ``(keys, values)`` per layer, ``(1, kv_heads, kept, head_dim)``.
        position: Tokens pre-filled (uncompressed), the position of the first tail token.
        tail: Prompt ids fed on the compressed cache (the question, or its last token).
        prompt_tokens: Length of the whole prompt.
    """

    layers: list[tuple[torch.Tensor, torch.Tensor]]
    position: int
    tail: list[int]
    prompt_tokens: int

    @property
    def kept(self) -> int:
        """Cache positions kept after compression (layer 0)."""
        return int(self.layers[0][0].shape[-2])

    def cache(self, rows: int) -> Any:
        """A fresh ``DynamicCache`` holding the prompt cache ``rows`` times."""
        from transformers import DynamicCache

        return DynamicCache(
            [(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in self.layers]
        )


def compress_prompt(
    model: Any, prompt_ids: Sequence[int], method: CompressionMethod, marker_ids: Sequence[int]
) -> PromptCache:
    """Pre-fill ``prompt_ids`` with ``method`` (no gradient)."""
    context, question = split_question(prompt_ids, marker_ids)
    prefill_ids, tail = method.split_prompt(context, question)
    cache = method.prefill(model, context, question)
    with torch.no_grad():  # clones are normal tensors (the pre-fill ran in inference mode)
        layers = [(layer.keys.clone(), layer.values.clone()) for layer in cache.layers]
    method.release(model)
    return PromptCache(layers, len(prefill_ids), list(tail), len(prompt_ids))


def prefill_prompt(model: Any, prompt_ids: Sequence[int]) -> PromptCache:
    """Pre-fill all but the last prompt token, recording gradients when they are enabled."""
    from transformers import DynamicCache

    device = next(model.parameters()).device
    cache = DynamicCache()
    ids = torch.tensor([list(prompt_ids[:-1])], dtype=torch.long, device=device)
    model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
    layers = [(layer.keys, layer.values) for layer in cache.layers]
    return PromptCache(layers, len(prompt_ids) - 1, list(prompt_ids[-1:]), len(prompt_ids))


@torch.no_grad()
def compressed_rollouts(
    model: Any, prompt: PromptCache, n: int, params: SamplingParams
) -> Rollouts:
    """``n`` continuations sampled on the compressed cache of ``prompt``."""
    cache = prompt.cache(1)
    device = next(model.parameters()).device
    tail = torch.tensor([prompt.tail], dtype=torch.long, device=device)
    logits = _step(model, cache, tail, prompt.position)
    return decode(model, cache, logits, prompt.position + len(prompt.tail), n, params)


def cached_logps(
    model: Any, prompt: PromptCache, completion_ids: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probabilities (and entropies) of completions on a prompt cache.

    ``model`` must carry TRL's fused LM head (``fused_lm_head=True``), as ``GRPOTrainer`` adds.

    Args:
        model: The (possibly wrapped) policy or reference model; gradients are recorded.
        prompt: The (compressed or shared) prompt cache.
        completion_ids: ``(rows, T)`` right-padded completions.
        mask: ``(rows, T)`` 1 on real completion tokens.

    Returns:
        ``(rows, T)`` log-probabilities and entropies (zero where ``mask`` is 0).
    """
    rows, steps = completion_ids.shape
    tail = torch.tensor(prompt.tail, dtype=torch.long, device=completion_ids.device)
    ids = torch.cat([tail.expand(rows, -1), completion_ids], dim=1)
    labels = ids.masked_fill(torch.cat([torch.zeros_like(ids[:, : len(tail)]), mask], 1) == 0, -100)
    start = prompt.position
    positions = torch.arange(start, start + ids.size(1), device=ids.device).expand(rows, -1)
    out = model(
        input_ids=ids,
        position_ids=positions,
        past_key_values=prompt.cache(rows),
        labels=labels,
        fused_lm_head=True,
    )
    entropy = out.entropy[:, -steps:] if out.entropy is not None else None
    return out.log_probs[:, -steps:], entropy


def peft_base(model: Any) -> Any:
    """The transformers model under a PEFT wrapper (the model itself otherwise)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


class CompressAwareMixin:
    """``GRPOTrainer`` mix-in scoring completions on prompt caches (see the module docstring).

    The trainer sets ``compress`` (a :class:`CompressionMethod` or ``None``), ``marker_ids`` and
    ``share_prompt`` (one exact prompt pass per group when not compressing).
    """

    compress: CompressionMethod | None = None
    marker_ids: list[int] = []
    share_prompt: bool = False

    def _compress(self, base: Any, prompt_ids: Sequence[int]) -> PromptCache:
        assert self.compress is not None
        return compress_prompt(base, prompt_ids, self.compress, self.marker_ids)

    def compressed_generate(
        self, model: Any, groups: list[tuple[list[int], int]], params: SamplingParams
    ) -> list[list[int]]:
        """Completions of ``(prompt, count)`` groups; logs the kept cache length."""
        base, completions = peft_base(model), []
        mode = "train" if self.model.training else "eval"
        for ids, count in groups:
            prompt = self._compress(base, ids)
            completions.extend(compressed_rollouts(base, prompt, count, params).completions)
            self._metrics[mode]["compress/kept_tokens"].append(float(prompt.kept))
            self._metrics[mode]["compress/prompt_tokens"].append(float(prompt.prompt_tokens))
            self._metrics[mode]["compress/kept_ratio"].append(prompt.kept / prompt.position)
        return completions

    def _get_per_token_logps_and_entropies(
        self,
        model: Any,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        logits_to_keep: int,
        batch_size: int | None = None,
        compute_entropy: bool = False,
        compute_aux_loss: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """TRL's per-token log-probabilities, from prompt caches when compressing or sharing."""
        from contextlib import nullcontext

        from trl.models.utils import disable_gradient_checkpointing

        base = peft_base(self.accelerator.unwrap_model(model))
        if self.compress is not None:
            context = disable_gradient_checkpointing(base, self.args.gradient_checkpointing_kwargs)
            make = self._compress
        elif (
            self.share_prompt
            and not base.is_gradient_checkpointing
            and not compute_aux_loss
            and all(value is None for value in kwargs.values())
        ):
            context, make = nullcontext(), prefill_prompt
        else:
            return super()._get_per_token_logps_and_entropies(
                model,
                input_ids,
                attention_mask,
                logits_to_keep,
                batch_size,
                compute_entropy,
                compute_aux_loss,
                **kwargs,
            )
        prompts, prompt_mask = input_ids[:, :-logits_to_keep], attention_mask[:, :-logits_to_keep]
        completions, mask = input_ids[:, -logits_to_keep:], attention_mask[:, -logits_to_keep:]
        groups: dict[tuple[int, ...], list[int]] = {}
        for row in range(input_ids.size(0)):
            key = tuple(prompts[row][prompt_mask[row].bool()].tolist())
            groups.setdefault(key, []).append(row)
        chunk = batch_size or input_ids.size(0)
        order, logps, entropies = [], [], []
        with context:
            for key, rows in groups.items():
                with self.accelerator.autocast():
                    prompt = make(base, key)
                for i in range(0, len(rows), chunk):
                    part = rows[i : i + chunk]
                    with self.accelerator.autocast():
                        lp, ent = cached_logps(model, prompt, completions[part], mask[part])
                    order.extend(part)
                    logps.append(lp)
                    entropies.append(ent)
        inverse = torch.argsort(torch.tensor(order, device=input_ids.device))
        entropy = (
            torch.cat(entropies)[inverse] if compute_entropy and None not in entropies else None
        )
        return torch.cat(logps)[inverse], entropy, None
