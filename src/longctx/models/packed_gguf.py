"""A frozen base model whose weights stay in their GGUF quantisation blocks.

LoRA trains a few small matrices on top of a frozen base, so the base need not sit in memory as
float32: QLoRA (Dettmers et al., 2023, "QLoRA: Efficient Finetuning of Quantized LLMs") keeps it
4-bit and de-quantises one layer at a time, in the forward pass and again in the backward pass.
Here the blocks are the GGUF file's own (llama.cpp's ``Q4_0``, ``Q4_1`` and ``Q8_0``), so nothing
is re-quantised: every packed weight de-quantises bit for bit to the float32 weight that
transformers de-quantised from the same file, which :func:`build_packed_base` checks, tensor by
tensor, before it caches the packed copy. Tensors of other types, or whose rows transformers
mixed in a way other than a row permutation, stay dense.

For SmolLM2-135M (``Q4_1`` layers, ``Q8_0`` tied embedding) this stores 0.1 GiB in place of
0.5 GiB of float32 weights.

A block of 32 weights ``w[j]`` is stored as (GGUF spec, ggml ``block_q4_1`` etc.):

* ``Q4_1``: float16 ``d`` and ``m``, 16 bytes of nibbles: ``w[j] = d * q[j] + m``;
* ``Q4_0``: float16 ``d``, 16 bytes of nibbles: ``w[j] = d * (q[j] - 8)``;
* ``Q8_0``: float16 ``d``, 32 int8: ``w[j] = d * q[j]``;

with nibble ``j < 16`` in the low half of byte ``j`` and nibble ``j + 16`` in its high half.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

BLOCK = 32
#: Bytes per 32-weight block, by GGUF type name.
BLOCK_BYTES = {"Q4_0": 18, "Q4_1": 20, "Q8_0": 34}
#: Most float32 values de-quantised at once (rows of a large matrix are done in chunks).
CHUNK_VALUES = 1 << 22


@dataclass
class PackedWeight:
    """One ``(rows, cols)`` weight matrix as GGUF blocks.

    Attributes:
        kind: ``Q4_0``, ``Q4_1`` or ``Q8_0``.
        codes: ``(rows, cols // 32, 16)`` uint8 nibble pairs, or ``(rows, cols // 32, 32)`` int8.
        scale: ``(rows, cols // 32)`` float16 block scales ``d``.
        offset: ``(rows, cols // 32)`` float16 block minima ``m`` (``Q4_1`` only, else ``None``).
    """

    kind: str
    codes: torch.Tensor
    scale: torch.Tensor
    offset: torch.Tensor | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.codes.shape[0], self.codes.shape[1] * BLOCK

    @property
    def nbytes(self) -> int:
        parts = [self.codes, self.scale] + ([self.offset] if self.offset is not None else [])
        return sum(p.numel() * p.element_size() for p in parts)

    def dequantize(
        self, rows: slice | torch.Tensor = slice(None), dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """The float weights of ``rows`` (a slice, or a tensor of row indices).

        Returns:
            ``(n_rows, cols)`` tensor of ``dtype``; computed in float32 in the same order as
            gguf-py's de-quantiser, so the values are bit-identical to it.
        """
        codes, scale = self.codes[rows], self.scale[rows].float().unsqueeze(-1)
        if self.kind == "Q8_0":
            values = codes.float().mul_(scale)
        else:  # nibbles straight into the float output: one pass each, no int temporaries
            values = torch.empty(*codes.shape[:-1], BLOCK, device=codes.device)
            values[..., : BLOCK // 2] = codes & 15
            values[..., BLOCK // 2 :] = codes >> 4
            if self.kind == "Q4_0":
                values.sub_(8).mul_(scale)
            else:
                values.mul_(scale).add_(self.offset[rows].float().unsqueeze(-1))
        values = values.reshape(*codes.shape[:-2], -1)
        return values if dtype == torch.float32 else values.to(dtype)

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        out = {f"{prefix}.codes": self.codes, f"{prefix}.scale": self.scale}
        if self.offset is not None:
            out[f"{prefix}.offset"] = self.offset
        return out

    @classmethod
    def from_tensors(cls, kind: str, tensors: dict[str, torch.Tensor], prefix: str) -> PackedWeight:
        return cls(
            kind,
            tensors[f"{prefix}.codes"],
            tensors[f"{prefix}.scale"],
            tensors.get(f"{prefix}.offset"),
        )


def pack_blocks(data: np.ndarray, kind: str) -> PackedWeight:
    """Split raw GGUF block bytes into a :class:`PackedWeight`.

    Args:
        data: ``(rows, blocks_per_row * block_bytes)`` uint8, as ``GGUFReader`` maps a tensor.
        kind: The tensor's GGUF type name (one of :data:`BLOCK_BYTES`).
    """
    if kind not in BLOCK_BYTES:
        raise ValueError(f"GGUF type {kind} cannot be packed; supported: {sorted(BLOCK_BYTES)}")
    rows = data.shape[0]
    blocks = np.ascontiguousarray(data).reshape(rows, -1, BLOCK_BYTES[kind])
    scale = torch.from_numpy(blocks[..., 0:2].copy().view(np.float16)[..., 0])
    if kind == "Q8_0":
        return PackedWeight(kind, torch.from_numpy(blocks[..., 2:].copy().view(np.int8)), scale)
    if kind == "Q4_0":
        return PackedWeight(kind, torch.from_numpy(blocks[..., 2:].copy()), scale)
    offset = torch.from_numpy(blocks[..., 2:4].copy().view(np.float16)[..., 0])
    return PackedWeight(kind, torch.from_numpy(blocks[..., 4:].copy()), scale, offset)


def _row_chunks(weight: PackedWeight) -> list[slice]:
    rows, cols = weight.shape
    step = max(1, CHUNK_VALUES // cols)
    return [slice(i, min(i + step, rows)) for i in range(0, rows, step)]


class _FrozenPackedMatmul(torch.autograd.Function):
    """``x @ W.T`` for a frozen packed ``W``: de-quantised again in backward, never saved."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, layer: PackedLinear) -> torch.Tensor:
        ctx.layer = layer
        return layer.project(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        weight: PackedWeight = ctx.layer.packed
        chunks = _row_chunks(weight)
        grad_x = None
        for rows in chunks:
            part = grad[..., rows] @ weight.dequantize(rows, grad.dtype)
            grad_x = part if grad_x is None else grad_x.add_(part)
        return grad_x, None


class _PackedBlocks:
    """The buffers shared by :class:`PackedLinear` and :class:`PackedEmbedding`."""

    def _register_blocks(self, packed: PackedWeight, dtype: torch.dtype) -> None:
        self.kind = packed.kind
        self.compute_dtype = dtype
        self.weight = None
        self.register_buffer("qweight", packed.codes, persistent=False)
        self.register_buffer("scale", packed.scale, persistent=False)
        self.register_buffer("offset", packed.offset, persistent=False)

    @property
    def packed(self) -> PackedWeight:
        return PackedWeight(self.kind, self.qweight, self.scale, self.offset)


class PackedLinear(_PackedBlocks, nn.Linear):
    """A frozen ``nn.Linear`` whose weight is a :class:`PackedWeight`.

    It subclasses ``nn.Linear`` so that PEFT wraps it with LoRA like any linear layer. ``weight``
    is ``None``; the blocks are buffers, the codes named ``qweight`` as GPTQ layers name theirs
    (PEFT takes the adapters' device from them and their dtype from ``compute_dtype``).
    Memory: the packed blocks, plus one de-quantised chunk of at most :data:`CHUNK_VALUES`
    floats while the layer runs.

    Args:
        packed: The weight, ``(out_features, in_features)``.
        bias: Optional frozen ``(out_features,)`` bias.
        dtype: Dtype of the adapters PEFT adds (the layer itself computes in its input's dtype).
    """

    def __init__(
        self,
        packed: PackedWeight,
        bias: torch.Tensor | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        nn.Module.__init__(self)
        self.out_features, self.in_features = packed.shape
        self._register_blocks(packed, dtype)
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ W.T`` without autograd: ``(..., in_features) -> (..., out_features)``."""
        weight = self.packed
        chunks = _row_chunks(weight)
        if len(chunks) == 1:
            return F.linear(x, weight.dequantize(dtype=x.dtype))
        out = x.new_empty(*x.shape[:-1], self.out_features)
        for rows in chunks:
            out[..., rows] = F.linear(x, weight.dequantize(rows, x.dtype))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            out = _FrozenPackedMatmul.apply(x, self)
        else:
            out = self.project(x)
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, {self.kind}"


class PackedEmbedding(_PackedBlocks, nn.Embedding):
    """A frozen ``nn.Embedding`` that de-quantises only the looked-up rows of its table.

    Args:
        packed: The table, ``(num_embeddings, embedding_dim)``.
        padding_idx: As in ``nn.Embedding`` (kept for callers that read it).
        dtype: Dtype of the returned embeddings.
    """

    def __init__(
        self,
        packed: PackedWeight,
        padding_idx: int | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        nn.Module.__init__(self)
        self.num_embeddings, self.embedding_dim = packed.shape
        self.padding_idx, self.max_norm, self.sparse = padding_idx, None, False
        self._register_blocks(packed, dtype)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """``(...)`` token ids -> ``(..., embedding_dim)`` embeddings."""
        return self.packed.dequantize(ids, self.compute_dtype)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, {self.kind}"


def packed_summary(model: nn.Module) -> dict[str, Any]:
    """Counts and bytes of the packed and dense weights of a model (for logs and tests)."""
    packed = [m for m in model.modules() if isinstance(m, PackedLinear | PackedEmbedding)]
    unique = {id(m.qweight): m for m in packed}.values()
    packed_bytes = sum(
        b.numel() * b.element_size()
        for m in unique
        for b in (m.qweight, m.scale, m.offset)
        if b is not None
    )
    dense_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    kinds: dict[str, int] = {}
    for m in packed:
        kinds[m.kind] = kinds.get(m.kind, 0) + 1
    return {
        "packed_modules": len(packed),
        "kinds": kinds,
        "packed_bytes": packed_bytes,
        "dense_parameter_bytes": dense_bytes,
    }
