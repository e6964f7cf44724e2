"""Shared fixtures: the embedded tokenizer, a tiny random Llama model, the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"../shared/data not present: {path} is missing")
    return path


@pytest.fixture(scope="session")
def tokenizer():
    from longctx.models.loader import load_tokenizer

    return load_tokenizer("embedded")


def make_tiny_llama(tokenizer, window: int = 4096, seed: int = 0):
    """A randomly initialised Llama-architecture model: 2 layers, hidden 64."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=window,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="session")
def tiny_loaded(tokenizer):
    from longctx.models.loader import LoadedModel

    model = make_tiny_llama(tokenizer)
    return LoadedModel(model=model, tokenizer=tokenizer, spec="tiny-random", window=4096)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer) -> Path:
    """The tiny model saved as a local Hugging Face folder (loadable by spec)."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    make_tiny_llama(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
