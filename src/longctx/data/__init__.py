"""Data: the typed example, readers of the upstream formats, synthetic data and contexts."""

from longctx.data.example import Document, Example

__all__ = ["Document", "Example"]
