"""Lexical retrieval with BM25 (Robertson & Zaragoza, 2009), through the ``bm25s`` library.

``bm25s`` (Lù, 2024) precomputes every document's BM25 term weights into a sparse matrix at
index time, so a query is a sparse row sum instead of a loop over documents as in ``rank_bm25``.
Text is lower-cased, split on ``\\b\\w\\w+\\b``, stripped of English stopwords and, where a
stemmer is available without any download, stemmed with Snowball/Porter: PyStemmer when
installed, else NLTK's Porter stemmer (pure Python, no data files), else no stemming.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from longctx.retrieval.base import Retriever, register, top_k

STEMMERS = ("auto", "pystemmer", "porter", "none")
_INDEX_DIR = "bm25s"


def resolve_stemmer(stemmer: str | None) -> str:
    """The stemmer actually used for ``stemmer`` (``"auto"`` picks the best one installed).

    Raises:
        ValueError: Unknown name, or the named stemmer is not installed.
    """
    stemmer = (stemmer or "none").lower()
    if stemmer not in STEMMERS:
        raise ValueError(f"unknown stemmer {stemmer!r}; choose from {', '.join(STEMMERS)}")
    available = {
        "pystemmer": importlib.util.find_spec("Stemmer") is not None,
        "porter": importlib.util.find_spec("nltk") is not None,
        "none": True,
    }
    if stemmer == "auto":
        return next(name for name in ("pystemmer", "porter", "none") if available[name])
    if not available[stemmer]:
        raise ValueError(f"stemmer {stemmer!r} is not installed")
    return stemmer


@functools.cache
def _stemmer_fn(name: str) -> Callable[[list[str]], list[str]] | None:
    """A function stemming a list of words, for ``bm25s.tokenize`` (one per process)."""
    if name == "pystemmer":
        import Stemmer

        return Stemmer.Stemmer("english").stemWords
    if name == "porter":
        from nltk.stem.porter import PorterStemmer

        # Pure-Python Porter is slow; words repeat across corpora, so memoise (bounded).
        stem = functools.lru_cache(maxsize=1 << 18)(PorterStemmer().stem)
        return lambda words: [stem(w) for w in words]
    return None


@register
class BM25Retriever(Retriever):
    """Okapi BM25 over a corpus of texts.

    Args:
        k1: Term-frequency saturation.
        b: Length normalisation.
        method: ``bm25s`` scoring variant (``"lucene"``, ``"robertson"``, ``"atire"``,
            ``"bm25l"``, ``"bm25+"``).
        stemmer: ``"auto"``, ``"pystemmer"``, ``"porter"`` or ``"none"``.
    """

    name = "bm25"

    def __init__(
        self, k1: float = 1.5, b: float = 0.75, method: str = "lucene", stemmer: str | None = "auto"
    ) -> None:
        super().__init__()
        self.k1, self.b, self.method = float(k1), float(b), method
        self.stemmer = resolve_stemmer(stemmer)
        self._stem = _stemmer_fn(self.stemmer)
        self._bm25: Any = None

    def params(self) -> dict[str, Any]:
        return {"k1": self.k1, "b": self.b, "method": self.method, "stemmer": self.stemmer}

    def tokenize(self, texts: list[str]) -> list[list[str]]:
        """Tokens of each text (lower-cased, stopwords removed, stemmed)."""
        import bm25s

        return bm25s.tokenize(
            texts, stopwords="en", stemmer=self._stem, return_ids=False, show_progress=False
        )

    def _index(self, texts: list[str]) -> None:
        import bm25s

        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=self._stem, show_progress=False)
        self._bm25 = bm25s.BM25(k1=self.k1, b=self.b, method=self.method)
        self._bm25.index(tokens, show_progress=False)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every indexed text for ``query`` (zeros when no query term is known)."""
        return self._scores_of(self.tokenize([query])[0])

    def _scores_of(self, tokens: list[str]) -> np.ndarray:
        ids = self._bm25.get_tokens_ids(tokens)
        if not ids:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores_from_ids(ids))

    def _search(self, query: str, k: int) -> list[tuple[int, float]]:
        return top_k(self.scores(query), k)

    def _search_batch(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]:
        return [top_k(self._scores_of(tokens), k) for tokens in self.tokenize(queries)]

    def _save_files(self, folder: Path) -> None:
        self._bm25.save(str(folder / _INDEX_DIR), show_progress=False)

    def _load_files(self, folder: Path) -> None:
        import bm25s

        self._bm25 = bm25s.BM25.load(str(folder / _INDEX_DIR), show_progress=False)
        n = int(self._bm25.scores["num_docs"])
        if n != self.size:
            raise ValueError(f"index holds {n} documents, meta.json says {self.size}")
