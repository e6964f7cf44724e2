"""Attention mass on document spans, per layer.

Attention weights need the eager attention implementation; the prompt prefix is run with the
model's own (fast) implementation and cached, and only the answering positions are run in eager
mode, so memory stays linear in the prompt length.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

_RANGE = re.compile(r"^\s*(-?\d*)\s*:\s*(-?\d*)\s*$")


def parse_layers(spec: str | range | None, n_layers: int) -> range:
    """Layer range from ``"all"``/``None``, ``"a:b"`` (layers a..b-1, either end optional,
    negative counts from the end, like a Python slice), ``"i"`` (one layer) or a ``range``.

    Raises:
        ValueError: A bad spec, or a range that is empty or outside ``0..n_layers-1``.
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "all"):
        return range(n_layers)
    if isinstance(spec, range):
        chosen = spec
    else:
        text = str(spec).strip()
        match = _RANGE.match(text)
        if match:
            start = int(match.group(1)) if match.group(1) else None
            stop = int(match.group(2)) if match.group(2) else None
            if any(v is not None and not -n_layers <= v <= n_layers for v in (start, stop)):
                raise ValueError(f"layer range {spec!r} outside 0..{n_layers - 1}")
            chosen = range(n_layers)[slice(start, stop)]
        elif re.fullmatch(r"-?\d+", text):
            i = int(text) % n_layers if int(text) < 0 else int(text)
            chosen = range(i, i + 1)
        else:
            raise ValueError(f"bad layer range {spec!r}: use all, a:b or a layer number")
    if len(chosen) == 0 or chosen.start < 0 or chosen.stop > n_layers or chosen.step != 1:
        raise ValueError(f"layer range {spec!r} is empty or outside 0..{n_layers - 1}")
    return chosen


def layer_range_name(layers: range) -> str:
    """``range(2, 5)`` -> ``"2:5"``."""
    return f"{layers.start}:{layers.stop}"


@contextmanager
def eager_attention(model: Any) -> Iterator[None]:
    """Switch a transformers model to eager attention (which returns weights), then restore."""
    config = model.config
    before = getattr(config, "_attn_implementation", None)
    if before == "eager":
        yield
        return
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    else:
        config._attn_implementation = "eager"
    try:
        yield
    finally:
        if before is not None:
            if hasattr(model, "set_attn_implementation"):
                model.set_attn_implementation(before)
            else:
                config._attn_implementation = before


@torch.inference_mode()
def attention_doc_mass_by_layer(
    model: Any,
    input_ids: Sequence[int],
    spans: Sequence[tuple[int, int]],
    answer_ids: Sequence[int] | None = None,
) -> np.ndarray:
    """Attention mass on each span per layer, from the positions that produce the answer.

    The query positions are the last prompt token and every answer token but the last (the
    positions whose next-token prediction is the answer); without an answer, the last prompt
    token. For each layer the attention weights of those queries on the span's tokens are
    summed over the span and averaged over heads and queries.

    Args:
        model: A causal LM (transformers).
        input_ids: Prompt token ids.
        spans: Token spans ``[start, end)`` within the prompt.
        answer_ids: Answer token ids appended after the prompt (teacher forcing).

    Returns:
        Array ``(n_layers, n_spans)`` of masses in [0, 1]; each row sums to at most 1.
    """
    prompt = [int(t) for t in input_ids]
    answer = [int(t) for t in (answer_ids or [])]
    if not prompt:
        raise ValueError("empty prompt")
    for start, end in spans:
        if not 0 <= start <= end <= len(prompt):
            raise ValueError(f"span ({start}, {end}) outside the prompt of {len(prompt)} tokens")
    device = next(model.parameters()).device
    ids = torch.tensor([prompt + answer[:-1]], dtype=torch.long, device=device)
    first_query = len(prompt) - 1
    cache = None
    if first_query > 0:
        cache = model(input_ids=ids[:, :first_query], use_cache=True).past_key_values
    with eager_attention(model):
        out = model(
            input_ids=ids[:, first_query:],
            past_key_values=cache,
            use_cache=cache is not None,
            output_attentions=True,
        )
    if not out.attentions:
        raise RuntimeError(f"{type(model).__name__} returned no attention weights")
    masses = np.zeros((len(out.attentions), len(spans)))
    for layer, weights in enumerate(out.attentions):
        per_key = weights[0].float().mean(dim=(0, 1))  # heads, queries -> (keys,)
        cumulative = torch.cat([per_key.new_zeros(1), per_key.cumsum(0)]).cpu().numpy()
        for d, (start, end) in enumerate(spans):
            masses[layer, d] = cumulative[end] - cumulative[start]
    return np.clip(masses, 0.0, 1.0)


def attention_doc_scores(
    model: Any,
    input_ids: Sequence[int],
    spans: Sequence[tuple[int, int]],
    layers: range | None = None,
    answer_ids: Sequence[int] | None = None,
) -> list[float]:
    """The attention mass the model puts on each span while answering.

    Runs the model over the prompt (plus the answer tokens when given) with
    ``output_attentions=True`` (eager attention, set temporarily), takes the attention from the
    answering positions (the last prompt token without an answer) to each span's tokens, summed
    over the span, averaged over heads, answering positions and the chosen layers.

    Args:
        model: A causal LM (transformers).
        input_ids: Prompt token ids.
        spans: Token spans ``[start, end)`` of the documents (:func:`document_spans`).
        layers: Layers to average over (default: all).
        answer_ids: The generated answer's token ids.

    Returns:
        One mass in [0, 1] per span.
    """
    masses = attention_doc_mass_by_layer(model, input_ids, spans, answer_ids)
    chosen = layers if layers is not None else range(masses.shape[0])
    if len(chosen) == 0 or chosen.start < 0 or chosen.stop > masses.shape[0]:
        raise ValueError(f"layers {chosen} outside the model's {masses.shape[0]} layers")
    return [float(v) for v in masses[list(chosen)].mean(axis=0)]
