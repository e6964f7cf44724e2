"""Swap a model's frozen linear and embedding weights for their GGUF blocks (see ``packed_gguf``).

The packed copy is built once per machine from the GGUF file and the float32 cache that
:func:`longctx.models.loader.cached_gguf_folder` made from it: every tensor is checked to
de-quantise bit for bit to its cached float32 weight, then all are saved next to that cache as
``packed-base.safetensors``. Later loads read only that file.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from longctx.models.packed_gguf import (
    BLOCK_BYTES,
    PackedEmbedding,
    PackedLinear,
    PackedWeight,
    pack_blocks,
)

logger = logging.getLogger(__name__)

PACKED_FILE = "packed-base.safetensors"
PACKED_FORMAT = "longctx-packed-gguf-1"


def _row_permutation(processor: Any, name: str, rows: int, mapping: dict) -> np.ndarray | None:
    """The row order transformers gives a GGUF tensor (e.g. Llama's q/k head permutation).

    The tensor processor is run on a column of row indices; ``None`` when it does anything
    other than reorder rows (renames, reshapes, splits), in which case the tensor stays dense.
    """
    index = np.arange(rows, dtype=np.float64).reshape(rows, 1)
    scratch: dict[str, Any] = {"tensors": {}}
    result = processor.process(
        weights=index, name=name, tensor_key_mapping=mapping, parsed_parameters=scratch
    )
    weights = getattr(result, "weights", None)
    if weights is None or result.name != name or np.shape(weights) != (rows, 1):
        return None
    order = np.asarray(weights)[:, 0].astype(np.int64)
    return order if np.array_equal(np.sort(order), np.arange(rows)) else None


def _packable_modules(model: nn.Module) -> set[str]:
    return {n for n, m in model.named_modules() if type(m) in (nn.Linear, nn.Embedding)}


def build_packed_base(
    gguf: Path, model: nn.Module, dense_file: Path
) -> tuple[dict[str, PackedWeight], list[str]]:
    """Pack every GGUF block tensor of ``model``'s linear/embedding layers that checks out.

    Args:
        gguf: The GGUF file the model was de-quantised from.
        model: The model loaded from ``dense_file`` (only its names and config are read).
        dense_file: The float32 safetensors file transformers wrote from ``gguf``.

    Returns:
        ``({module name: packed weight}, [module names left dense, with the reason])``.
    """
    from gguf import GGUFReader
    from safetensors import safe_open
    from transformers.modeling_gguf_pytorch_utils import (
        TENSOR_PROCESSORS,
        TensorProcessor,
        get_gguf_hf_weights_map,
        load_gguf_checkpoint,
    )

    reader = GGUFReader(str(gguf))
    field = reader.fields["general.architecture"]
    arch = bytes(field.parts[field.data[0]]).decode()
    config = load_gguf_checkpoint(str(gguf), return_tensors=False)["config"]
    processor = TENSOR_PROCESSORS.get(arch, TensorProcessor)(config=config)
    mapping = get_gguf_hf_weights_map(model, processor)
    modules = _packable_modules(model)
    packed: dict[str, PackedWeight] = {}
    dense: list[str] = []
    with safe_open(str(dense_file), framework="pt") as cached:
        stored = set(cached.keys())
        for tensor in reader.tensors:
            hf_name = mapping.get(tensor.name, "")
            module = hf_name.removesuffix(".weight")
            if module not in modules or not hf_name.endswith(".weight"):
                continue
            kind = tensor.tensor_type.name
            if kind not in BLOCK_BYTES:
                dense.append(f"{module} ({kind} blocks are not supported)")
                continue
            order = _row_permutation(processor, tensor.name, tensor.data.shape[0], mapping)
            if order is None or hf_name not in stored:
                dense.append(f"{module} (transformers does more than reorder its rows)")
                continue
            weight = pack_blocks(np.asarray(tensor.data)[order], kind)
            if not torch.equal(weight.dequantize(), cached.get_tensor(hf_name)):
                dense.append(f"{module} (de-quantised values differ from the float32 cache)")
                continue
            packed[module] = weight
    return packed, dense


def save_packed(path: Path, packed: dict[str, PackedWeight], dense: list[str]) -> None:
    """Write the packed weights atomically (temporary file, then rename)."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    for name, weight in packed.items():
        tensors.update(weight.tensors(name))
    metadata = {
        "format": PACKED_FORMAT,
        "kinds": json.dumps({name: w.kind for name, w in packed.items()}),
        "dense": json.dumps(dense),
    }
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".tmp-", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_packed(path: Path) -> tuple[dict[str, PackedWeight], list[str]]:
    """Read a file written by :func:`save_packed`: the packed weights and the dense list.

    Raises:
        ValueError: The file is not a packed base of this format.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if metadata.get("format") != PACKED_FORMAT:
        raise ValueError(
            f"{path}: field 'format' is {metadata.get('format')!r}, expected {PACKED_FORMAT!r}"
        )
    tensors = load_file(str(path))
    packed = {
        name: PackedWeight.from_tensors(kind, tensors, name)
        for name, kind in json.loads(metadata.get("kinds", "{}")).items()
    }
    return packed, json.loads(metadata.get("dense", "[]"))


def apply_packed(model: nn.Module, packed: dict[str, PackedWeight]) -> int:
    """Replace the named ``nn.Linear``/``nn.Embedding`` modules by packed, frozen ones.

    A tied LM head becomes a :class:`PackedLinear` over the packed embedding's blocks.

    Returns:
        The number of modules replaced.

    Raises:
        ValueError: A name is not a linear or embedding module of ``model``.
    """
    embed_weight = model.get_input_embeddings().weight
    count = 0
    for name, weight in packed.items():
        module = model.get_submodule(name)
        if isinstance(module, nn.Embedding) and not isinstance(module, PackedEmbedding):
            shape = (module.num_embeddings, module.embedding_dim)
            new: nn.Module = PackedEmbedding(weight, module.padding_idx, module.weight.dtype)
        elif isinstance(module, nn.Linear) and not isinstance(module, PackedLinear):
            shape = (module.out_features, module.in_features)
            bias = None if module.bias is None else module.bias.detach()
            new = PackedLinear(weight, bias, module.weight.dtype)
        else:
            raise ValueError(f"packed weight {name!r} names a {type(module).__name__}")
        if shape != weight.shape:
            raise ValueError(
                f"packed weight {name!r} has shape {weight.shape}, the model's layer {shape}"
            )
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, new)
        count += 1
    head, embed = model.get_output_embeddings(), model.get_input_embeddings()
    tied = type(head) is nn.Linear and head.weight is embed_weight
    if tied and isinstance(embed, PackedEmbedding):
        model.set_output_embeddings(PackedLinear(embed.packed, dtype=embed.compute_dtype))
        count += 1
    return count


def pack_frozen_base(
    model: nn.Module,
    gguf: Path,
    dense_folder: Path,
    on_status: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Keep ``model``'s GGUF-quantised layers packed (building the cached copy once).

    Args:
        model: Loaded from ``dense_folder``, before any forward pass (its float32 weights are
            memory-mapped, so layers replaced here are never paged in).
        gguf: The GGUF file ``dense_folder`` was made from.
        dense_folder: The float32 cache folder (``model.safetensors`` inside).
        on_status: Receives a message when the packed copy is built.

    Returns:
        ``{"modules": replaced count, "dense": [names left dense with reasons], "file": path}``.
    """
    path = Path(dense_folder) / PACKED_FILE
    packed: dict[str, PackedWeight] | None = None
    if path.exists():
        try:
            packed, dense = load_packed(path)
        except ValueError as error:  # another version's file: build it again
            logger.warning("%s; building it again", error)
    if packed is None:
        (on_status or logger.info)(f"Packing the GGUF blocks of {gguf.name} once into {path}")
        packed, dense = build_packed_base(gguf, model, Path(dense_folder) / "model.safetensors")
        if not packed:
            raise ValueError(f"{gguf}: no layer could be kept packed: {dense}")
        save_packed(path, packed, dense)
    count = apply_packed(model, packed)
    return {"modules": count, "dense": dense, "file": str(path)}
