"""Shared fixtures: the embedded tokenizer, a tiny random Llama model, the shared data folder."""

from __future__ import annotations

import os
import shutil
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


def require_kernel():
    """The compiled topk_decode kernel; skip where no C++ compiler or ninja is installed, fail
    where they are but the build fails."""
    from longctx.compress.topk_kernel import load_topk_kernel

    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None or shutil.which("ninja") is None:
        pytest.skip(f"building the topk_decode kernel needs {compiler} and ninja on PATH")
    kernel = load_topk_kernel()
    if kernel is None:
        pytest.fail("the topk_decode kernel did not build (see the RuntimeWarning)")
    return kernel


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


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread (and do not fight other processes for cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def sleeps(monkeypatch):
    """Record the OpenAI client's backoff sleeps instead of waiting."""
    from longctx.models import openai_engine

    calls: list[float] = []
    monkeypatch.setattr(openai_engine.time, "sleep", calls.append)
    return calls


@pytest.fixture
def server():
    """A fake OpenAI-compatible server on 127.0.0.1 (:class:`tests.fake_openai.FakeOpenAI`)."""
    from tests.fake_openai import FakeOpenAI

    with FakeOpenAI() as fake:
        yield fake
