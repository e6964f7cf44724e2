"""Models: loading (embedded, local folder, GGUF, hub id) and greedy generation."""

from longctx.models.loader import LoadedModel, load_model, load_tokenizer

__all__ = ["LoadedModel", "load_model", "load_tokenizer"]
