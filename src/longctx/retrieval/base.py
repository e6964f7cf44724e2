"""The retriever interface, its registry, and the on-disk index format shared by every retriever.

A retriever indexes a list of texts and ranks them against a query; ids are positions in that
list. Every retriever saves to a folder holding its own index files plus ``meta.json``::

    {"format": 1, "retriever": "bm25", "params": {...}, "size": 2655,
     "corpus_hash": "<sha256 of the texts>", "files": {"<relative path>": "<sha256>", ...}}

``load`` refuses a folder whose files are missing or whose checksums differ (raising
:class:`IndexCorruptError`), so a damaged index is never used silently; see
:func:`longctx.retrieval.store.get_or_build` for the rebuild policy.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

META_FILE = "meta.json"
FORMAT_VERSION = 1

RETRIEVERS: dict[str, type[Retriever]] = {}


class IndexCorruptError(ValueError):
    """A saved index is missing files, has garbled files, or does not match its ``meta.json``."""


def register(cls: type[Retriever]) -> type[Retriever]:
    """Class decorator adding a retriever to :data:`RETRIEVERS` under its ``name``."""
    if cls.name in RETRIEVERS:
        raise ValueError(f"retriever {cls.name!r} registered twice")
    RETRIEVERS[cls.name] = cls
    return cls


def make_retriever(name: str, **kwargs: Any) -> Retriever:
    """A new, empty retriever of a registered kind (``"bm25"``, ``"dense"``, ``"hybrid"``).

    Raises:
        KeyError: ``name`` is not registered (the message lists the known names).
    """
    if name not in RETRIEVERS:
        raise KeyError(f"unknown retriever {name!r}; choose from {', '.join(sorted(RETRIEVERS))}")
    return RETRIEVERS[name](**kwargs)


def corpus_hash(texts: Sequence[str]) -> str:
    """sha256 of a list of texts (length-prefixed, so ``["ab"]`` and ``["a", "b"]`` differ)."""
    digest = hashlib.sha256()
    digest.update(len(texts).to_bytes(8, "little"))
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def top_k(scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The ``k`` best ``(index, score)`` pairs, best first; ties go to the lower index.

    Exact and deterministic: every index scoring at least the k-th best score is a candidate,
    and candidates are sorted by (score descending, index ascending).
    """
    n = len(scores)
    k = min(k, n)
    if k <= 0:
        return []
    scores = np.asarray(scores, dtype=np.float64)
    if k < n:
        threshold = np.partition(scores, n - k)[n - k]
        candidates = np.flatnonzero(scores >= threshold)
    else:
        candidates = np.arange(n)
    order = np.lexsort((candidates, -scores[candidates]))[:k]
    return [(int(candidates[i]), float(scores[candidates[i]])) for i in order]


class Retriever(ABC):
    """Ranks the texts of a corpus against a query.

    Subclasses set ``name``, implement :meth:`params`, :meth:`_index`, :meth:`_search` and the
    file hooks :meth:`_save_files` / :meth:`_load_files`, and may override :meth:`_search_batch`.

    Attributes:
        size: Number of indexed texts (0 before :meth:`index`).
        corpus_hash: :func:`corpus_hash` of the indexed texts, ``None`` before :meth:`index`.
    """

    name: ClassVar[str] = ""

    def __init__(self) -> None:
        self.size = 0
        self.corpus_hash: str | None = None

    # -- to implement ---------------------------------------------------------------------------

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments that determine the index."""

    @abstractmethod
    def _index(self, texts: list[str]) -> None:
        """Build the index of a non-empty list of texts."""

    @abstractmethod
    def _search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Top ``k`` (1 <= k <= size) results, best first, ties to the lower index."""

    @abstractmethod
    def _save_files(self, folder: Path) -> None:
        """Write the index files (not ``meta.json``) into an existing folder."""

    @abstractmethod
    def _load_files(self, folder: Path) -> None:
        """Read the index files written by :meth:`_save_files`."""

    def _search_batch(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]:
        return [self._search(q, k) for q in queries]

    def prepare(self, texts: Sequence[str]) -> None:
        """Precompute, in one batch, what later ``index``/``search`` calls on these texts need.

        A no-op by default; the dense retriever embeds them into its process-wide cache, which
        makes many small per-example indexes as fast as one large one.
        """
        del texts  # nothing to precompute

    # -- public API -----------------------------------------------------------------------------

    def index(self, texts: Sequence[str]) -> None:
        """Index ``texts`` (replacing any previous index); ids are positions in this list."""
        texts = [str(t) for t in texts]
        self.size = len(texts)
        self.corpus_hash = corpus_hash(texts)
        if texts:
            self._index(texts)

    def _check(self, k: int) -> int:
        if self.corpus_hash is None:
            raise RuntimeError(f"{self.name} retriever: call index() or load() before search()")
        return min(k, self.size)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """The ``k`` best ``(text id, score)`` pairs for ``query``, best first.

        ``k`` larger than the corpus is clamped to its size; ``k <= 0`` gives ``[]``.
        """
        k = self._check(k)
        return self._search(query, k) if k > 0 else []

    def search_batch(self, queries: Sequence[str], k: int) -> list[list[tuple[int, float]]]:
        """:meth:`search` for many queries (batched where the retriever allows)."""
        k = self._check(k)
        if k <= 0:
            return [[] for _ in queries]
        return self._search_batch(list(queries), k)

    def save(self, folder: str | Path) -> Path:
        """Write the index and ``meta.json`` (with file checksums) into ``folder``."""
        if self.corpus_hash is None:
            raise RuntimeError(f"{self.name} retriever: nothing to save before index()")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.size:
            self._save_files(folder)
        files = {
            p.relative_to(folder).as_posix(): file_sha256(p)
            for p in sorted(folder.rglob("*"))
            if p.is_file() and p != folder / META_FILE
        }
        meta = {
            "format": FORMAT_VERSION,
            "retriever": self.name,
            "params": self.params(),
            "size": self.size,
            "corpus_hash": self.corpus_hash,
            "files": files,
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Retriever:
        """Load a saved index; on the base class, the kind is read from ``meta.json``.

        Raises:
            IndexCorruptError: ``meta.json`` or an index file is missing, garbled, or does not
                match (wrong retriever kind, checksum or size).
        """
        folder = Path(folder)
        meta = read_meta(folder)
        name = meta["retriever"]
        target = RETRIEVERS.get(name) if cls is Retriever else cls
        if target is None or target.name != name:
            raise IndexCorruptError(f"{folder}: holds a {name!r} index, not {cls.name!r}")
        for rel, digest in meta["files"].items():
            path = folder / rel
            if not path.is_file():
                raise IndexCorruptError(f"{folder}: index file {rel} is missing")
            if file_sha256(path) != digest:
                raise IndexCorruptError(f"{folder}: index file {rel} does not match its checksum")
        try:
            retriever = target(**meta["params"])
        except (TypeError, ValueError) as err:
            raise IndexCorruptError(f"{folder}: bad parameters in {META_FILE} ({err})") from err
        retriever.size = int(meta["size"])
        retriever.corpus_hash = str(meta["corpus_hash"])
        if retriever.size:
            try:
                retriever._load_files(folder)
            except IndexCorruptError:
                raise
            except Exception as err:  # a library's own error on a bad file
                raise IndexCorruptError(f"{folder}: cannot load index ({err})") from err
        return retriever


def read_meta(folder: Path) -> dict[str, Any]:
    """Read and validate ``meta.json`` of a saved index.

    Raises:
        IndexCorruptError: The file is missing, not JSON, or lacks a field.
    """
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise IndexCorruptError(f"{folder}: {META_FILE} is missing")
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise IndexCorruptError(f"{folder}: {META_FILE} is not valid JSON ({err})") from None
    fields = {"retriever": str, "params": dict, "size": int, "corpus_hash": str, "files": dict}
    for key, kind in fields.items():
        if not isinstance(meta, dict) or not isinstance(meta.get(key), kind):
            raise IndexCorruptError(f"{folder}: {META_FILE} lacks a valid {key!r} field")
    if meta.get("format") != FORMAT_VERSION:
        raise IndexCorruptError(f"{folder}: unknown index format {meta.get('format')!r}")
    return meta
