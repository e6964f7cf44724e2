"""Top-k attention at decode time over the full cache (RetrievalAttention-style, 2024).

Liu, Chen, Lu, Jiang, Han, Zhang, et al. "RetrievalAttention: Accelerating Long-Context LLM
Inference via Vector Retrieval." arXiv:2409.10516, 2024 (NeurIPS 2025); Di Liu and Meng Chen are
co-first authors. The whole KV cache is kept; at each decoding step every query head attends only
to the ``k`` keys with the largest ``q . k`` (found by exact search or a vector index) plus a
static set of ``n_sink`` first and ``n_recent`` last positions. The paper's attention-aware ANN
index is not reproduced: ``use_faiss`` uses off-the-shelf faiss indexes (exact ``flat`` or
``hnsw``), which the paper reports to need a larger scan on out-of-distribution queries.

Plugged in through transformers' attention interface: importing this module registers the
attention function ``"longctx_topk"`` (``AttentionInterface``) and its mask function (the
``sdpa`` one, ``AttentionMaskInterface``); :meth:`TopKDecode.decoding` switches the model to it
with ``model.set_attn_implementation`` and restores the previous implementation on exit. Model
code is untouched. Forward passes with more than one query token (pre-fill, a multi-token
question) fall back to ``sdpa``; only single-token decoding steps use top-k.

On CPU, exact decoding steps without autograd run in one fused kernel (``topk_kernel.cpp``,
compiled on first use): scores read each key once, the threshold comes from a histogram
selection, and values are summed with the softmax weights in the same pass over the cache.
Elsewhere (GPU, autograd, faiss) the torch implementation below runs.

Budget: ``k = int(L * (1 - ratio))`` for the current cache length ``L`` (or a fixed ``k``). The
sinks and the recent window are static; the ``k`` retrieved positions are the best-scoring ones
outside them, so a step attends to ``min(L, k + n_sink + n_recent)`` positions per query head
(ratio 0, or ``k >= L``, is exactly full attention). Grouped-query attention: each query head
selects its own positions among its KV head's keys; the bytes read per step count, per KV head,
the union of what its query heads selected.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from longctx.compress.base import CompressionMethod
from longctx.compress.registry import register_method
from longctx.compress.topk_kernel import load_topk_kernel

ATTN_NAME = "longctx_topk"
TOPK_MODEL_NAMES = (
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "Phi3ForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen3ForCausalLM",
)


def _select_exact(scores: torch.Tensor, k: int, n_sink: int, n_recent: int) -> torch.Tensor:
    """Boolean keep-mask ``(b, kv, g, L)``: the static positions and the ``k`` best others.

    The ``k``-th best score among the positions between the sinks and the recent window is
    found with ``kthvalue`` (a selection, no sort) and every position at or above it is kept:
    exactly ``k`` unless scores tie at the threshold, when all tied positions are kept.
    """
    length = scores.shape[-1]
    middle = scores[..., n_sink : length - n_recent]
    n = middle.shape[-1]
    if k >= n:
        return torch.ones(scores.shape, dtype=torch.bool, device=scores.device)
    threshold = middle.kthvalue(n - k + 1, dim=-1, keepdim=True).values
    keep = scores >= threshold
    keep[..., :n_sink] = True
    keep[..., length - n_recent :] = True
    return keep


def _masked(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Apply an attention mask (boolean keep-mask or additive) to scores or a bias."""
    if mask is None:
        return x
    return x.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else x + mask


def _select_faiss(
    method: TopKDecode, module: Any, key: torch.Tensor, q: torch.Tensor, always: torch.Tensor
) -> torch.Tensor:
    """Boolean selection ``(b, kv, g, L)``: the static positions plus the top ``k`` others.

    Args:
        key: ``(b, kv_heads, L, head_dim)``; keys not yet in the layer's indexes are added.
        q: ``(b, kv_heads, groups, head_dim)``.
        always: ``(L,)`` static positions (sinks and recent window).
    """
    import numpy as np

    b, n_kv, length, dim = key.shape
    k = method.budget(length)
    state = method._indexes.get(module.layer_idx)
    if state is None or state[1] > length:  # new cache (or a shorter one): rebuild
        state = ([method._new_index(dim) for _ in range(b * n_kv)], 0)
    indexes, added = state
    if added < length:
        new = key[:, :, added:length].detach().float().cpu().numpy()
        for i, index in enumerate(indexes):
            index.add(np.ascontiguousarray(new[i // n_kv, i % n_kv]))
    method._indexes[module.layer_idx] = (indexes, length)
    queries = q.detach().float().cpu().numpy()
    static = always.cpu()
    n_search = min(length, k + int(static.sum()))
    selected = torch.zeros(*q.shape[:3], length, dtype=torch.bool)
    for i, index in enumerate(indexes):
        _, found = index.search(np.ascontiguousarray(queries[i // n_kv, i % n_kv]), n_search)
        found = torch.from_numpy(found)  # (groups, n_search), best first, -1 when missing
        valid = (found >= 0) & ~static[found.clamp(min=0)]
        keep = valid & (valid.cumsum(dim=1) <= k)  # the first k non-static hits
        rows = torch.arange(found.shape[0]).unsqueeze(1).expand_as(found)
        selected[i // n_kv, i % n_kv][rows[keep], found[keep]] = True
    return selected.to(key.device) | always


def _fused_kernel(
    method: TopKDecode, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor
) -> Any | None:
    """The compiled CPU kernel when it applies: exact search, float32 CPU tensors, no autograd,
    a compiled (groups, head size) pair and rows of contiguous keys and values."""
    if (
        not method.kernel
        or method.use_faiss
        or torch.is_grad_enabled()
        or key.device.type != "cpu"
        or not query.dtype == key.dtype == value.dtype == torch.float32
        or key.stride(-1) != 1
        or value.stride(-1) != 1
    ):
        return None
    kernel = load_topk_kernel()
    groups, dim = query.shape[1] // key.shape[1], query.shape[-1]
    return kernel if kernel is not None and kernel.supports(groups, dim) else None


def topk_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention of one query token to its top-k keys (an ``AttentionInterface`` function).

    Args:
        module: The attention layer; its ``_longctx_topk`` attribute (a :class:`TopKDecode`) holds
            the budget. Without it, or when ``q_len > 1``, this is plain ``sdpa``.
        query: ``(b, heads, q_len, head_dim)``, after RoPE.
        key: ``(b, kv_heads, L, head_dim)``, the whole cache after RoPE.
        value: ``(b, kv_heads, L, head_dim)``.
        attention_mask: ``None`` or a mask broadcastable to ``(b, heads, q_len, L)`` (boolean,
            True = attend, or additive).
        dropout: Dropout probability (0 at inference).
        scaling: Softmax scale (default ``head_dim ** -0.5``).

    Returns:
        ``(output, None)`` with ``output`` of shape ``(b, q_len, heads, head_dim)``.
    """
    method: TopKDecode | None = getattr(module, "_longctx_topk", None)
    if method is None or query.shape[2] != 1:
        return ALL_ATTENTION_FUNCTIONS["sdpa"](
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    b, n_heads, _, dim = query.shape
    n_kv, length = key.shape[1], key.shape[2]
    groups = n_heads // n_kv
    budget = method.budget(length)
    n_keep = min(length, budget + method.n_sink + method.n_recent)
    if n_keep >= length:  # everything selected: exactly full attention
        method._record(module, length * n_kv, key)
        return ALL_ATTENTION_FUNCTIONS["sdpa"](
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    q = query.reshape(b, n_kv, groups, dim)
    mask = None
    if attention_mask is not None:
        mask = attention_mask.expand(b, n_heads, 1, length).reshape(b, n_kv, groups, length)
    scale = dim**-0.5 if scaling is None else scaling
    kernel = _fused_kernel(method, query, key, value)
    if kernel is not None:
        bias = None if mask is None else _masked(torch.zeros(mask.shape), mask).contiguous()
        out, kept_pairs = kernel.topk_decode_step(
            q.contiguous(), key, value, bias, scale, budget, method.n_sink, method.n_recent
        )
        method._record(module, kept_pairs // b, key)
        return out.view(b, 1, n_heads, dim), None  # (b, kv, g, dim) is (b, q_len=1, heads, dim)
    # Without autograd (decoding), float32 scores live in a buffer reused across layers and
    # steps and the softmax runs in place: on CPU a fresh ~150 KB (b, kv, g, L) tensor per layer
    # costs more than its arithmetic (its pages are faulted in at every allocation).
    in_place = not torch.is_grad_enabled() and key.dtype == torch.float32
    if in_place:
        scores = method._scores_buffer((b, n_kv, groups, length), key)
        torch.matmul(q, key.transpose(-1, -2), out=scores).mul_(scale)
        if mask is not None:
            scores.copy_(_masked(scores, mask))
    else:
        scores = _masked(torch.matmul(q, key.transpose(-1, -2)).float() * scale, mask)
    if method.use_faiss:
        always = torch.zeros(length, dtype=torch.bool, device=key.device)
        always[: method.n_sink] = True
        always[length - method.n_recent :] = True
        keep = _select_faiss(method, module, key, q, always)
    else:
        keep = _select_exact(scores, budget, method.n_sink, method.n_recent)
    if mask is not None:  # masked positions (padding) are never attended nor counted
        keep &= scores > float("-inf")
    union = keep.view(torch.uint8).amax(dim=2)  # (b, kv, L): read by any query head of the group
    method._record(module, int(union.sum()) // b, key)
    if in_place:
        # Softmax normalised after P @ V; the exponential runs before the unselected positions
        # are zeroed: exp of -inf entries (and masked_fill) run several times slower on CPU.
        scores.sub_(scores.amax(dim=-1, keepdim=True)).exp_().mul_(keep)
        out = torch.matmul(scores, value).div_(scores.sum(dim=-1, keepdim=True))
    else:
        probs = torch.where(keep, scores, float("-inf")).softmax(dim=-1).to(value.dtype)
        out = torch.matmul(probs, value)  # (b, kv, g, dim): unselected positions weigh 0
    return out.view(b, n_heads, 1, dim).transpose(1, 2).contiguous(), None


AttentionInterface.register(ATTN_NAME, topk_attention)
AttentionMaskInterface.register(ATTN_NAME, sdpa_mask)


@register_method("topk_decode")
@dataclass
class TopKDecode(CompressionMethod):
    """Full cache, top-k attention while decoding.

    Attributes:
        ratio: Budget as a fraction removed: ``k = int(L * (1 - ratio))``; ignored when ``k`` is
            set. Nothing is evicted, so the kept bytes equal the full cache.
        k: Fixed number of retrieved keys per query head and step.
        n_sink: First positions always attended.
        n_recent: Last positions always attended (the current token is the last one).
        use_faiss: Retrieve with a faiss index per (layer, KV head) instead of exact top-k. The
            index grows by the new keys at each step; attention then runs over the full cache
            with the unselected positions masked out.
        faiss_index: ``"flat"`` (exact inner product) or ``"hnsw"`` (approximate).
        hnsw_m: Neighbours per node of the HNSW graph.
        kernel: Run exact decoding steps on CPU (float32, no autograd) with the fused kernel of
            ``topk_kernel.cpp``, compiled on first use; the torch implementation is used where
            it cannot be built or does not apply (GPU, autograd, faiss, other dtypes).
    """

    k: int | None = None
    n_sink: int = 4
    n_recent: int = 64
    use_faiss: bool = False
    faiss_index: str = "flat"
    hnsw_m: int = 32
    kernel: bool = True
    _indexes: dict[int, Any] = field(default_factory=dict, init=False, repr=False)
    _entries: int = field(default=0, init=False, repr=False)
    _steps: int = field(default=0, init=False, repr=False)
    _scores: torch.Tensor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.faiss_index not in ("flat", "hnsw"):
            raise ValueError(f"faiss_index must be 'flat' or 'hnsw', got {self.faiss_index!r}")
        if min(self.n_sink, self.n_recent, 1 if self.k is None else self.k) < 0:
            raise ValueError("k, n_sink and n_recent must be non-negative")

    def supported_models(self) -> tuple[type, ...] | None:
        """Decoder-only models using the attention interface with RoPE'd cached keys."""
        import transformers

        return tuple(getattr(transformers, name) for name in TOPK_MODEL_NAMES)

    def budget(self, length: int) -> int:
        """Retrieved keys per query head for a cache of ``length`` positions (at least 1)."""
        k = self.k if self.k is not None else int(length * (1 - self.ratio))
        return max(1, min(k, length))

    def _new_index(self, dim: int) -> Any:
        import faiss

        if self.faiss_index == "hnsw":
            index = faiss.IndexHNSWFlat(dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = max(64, 2 * (self.k or 32))
            return index
        return faiss.IndexFlatIP(dim)

    def _scores_buffer(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """A contiguous ``shape`` view of the reused score buffer (grown by 25% when short; new
        when inference mode changed, as an inference tensor cannot be written outside it)."""
        size = math.prod(shape)
        buffer = self._scores
        if (
            buffer is None
            or buffer.numel() < size
            or buffer.is_inference() != torch.is_inference_mode_enabled()
        ):
            buffer = self._scores = like.new_empty(size + size // 4)
        return buffer[:size].view(shape)

    def _record(self, module: Any, entries: int, key: torch.Tensor) -> None:
        """Count the (KV head, position) ``entries`` one layer attends to at one step."""
        self._entries += 2 * entries * key.shape[-1] * key.element_size()
        if module.layer_idx == 0:
            self._steps += 1

    @contextmanager
    def decoding(self, model: Any) -> Iterator[None]:
        """Switch the model to ``longctx_topk`` attention; restore it on exit."""
        previous = model.config._attn_implementation
        modules = [m for name, m in model.named_modules() if name.endswith("self_attn")]
        self._indexes, self._entries, self._steps, self._scores = {}, 0, 0, None
        for module in modules:
            module._longctx_topk = self
        model.set_attn_implementation(ATTN_NAME)
        try:
            yield
        finally:
            model.set_attn_implementation(previous)
            for module in modules:
                del module._longctx_topk
            self._indexes, self._scores = {}, None

    def attended_bytes(self) -> int | None:
        """Mean key and value bytes attended per single-token step, summed over layers.

        ``None`` when no single-token step ran (e.g. ``max_new_tokens=1``: the first answer token
        comes from the question's multi-token forward pass, which uses full attention).
        """
        return None if self._steps == 0 else self._entries // self._steps
