"""Reuse a saved index when it provably matches the corpus; otherwise warn and rebuild it.

An index folder is reused only when its ``meta.json`` names the same retriever with the same
parameters, its ``corpus_hash`` equals the sha256 of the texts, and every index file matches its
checksum and loads. Anything else (missing or garbled files, another corpus, other parameters)
is reported with :class:`IndexRebuildWarning` (and a logged warning) naming the reason, and the
index is rebuilt and saved in place of the old one. A stale index is never used silently.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from longctx.retrieval.base import (
    IndexCorruptError,
    Retriever,
    corpus_hash,
    make_retriever,
    read_meta,
)

logger = logging.getLogger(__name__)


class IndexRebuildWarning(UserWarning):
    """A saved index was corrupt or stale and is being rebuilt."""


def _stale_reason(
    name: str, texts: list[str], folder: Path, expected: dict[str, Any]
) -> tuple[str | None, Retriever | None]:
    """``(reason, None)`` when the saved index cannot be reused, else ``(None, retriever)``."""
    try:
        meta = read_meta(folder)
    except IndexCorruptError as err:
        return f"corrupt index: {err}", None
    if meta["retriever"] != name:
        return f"index was built by the {meta['retriever']!r} retriever, not {name!r}", None
    if meta["params"] != expected:
        return f"index parameters differ (saved {meta['params']}, wanted {expected})", None
    if meta["corpus_hash"] != corpus_hash(texts) or meta["size"] != len(texts):
        return (
            f"corpus changed (index built for {meta['size']} texts with hash "
            f"{meta['corpus_hash'][:12]}, corpus has {len(texts)} texts with hash "
            f"{corpus_hash(texts)[:12]})"
        ), None
    try:
        retriever = Retriever.load(folder)
    except Exception as err:  # corrupt files surface as any library's error
        return f"corrupt index: {err}", None
    return None, retriever


def _replace(folder: Path, retriever: Retriever) -> None:
    """Save ``retriever`` to a sibling temporary folder, then swap it in for ``folder``."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        retriever.save(tmp)
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
            old.rmdir()
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def get_or_build(name: str, texts: Sequence[str], folder: str | Path, **kwargs: Any) -> Retriever:
    """Load the index of ``texts`` saved in ``folder``, or build and save it.

    Args:
        name: Registered retriever name (``"bm25"``, ``"dense"``, ``"hybrid"``).
        texts: The corpus; ids returned by ``search`` are positions in it.
        folder: Index folder, owned by this function (its contents are replaced on rebuild).
        **kwargs: Retriever parameters (e.g. ``model=`` for dense).

    Returns:
        A ready retriever over ``texts``.

    Warns:
        IndexRebuildWarning: The folder held an index that is corrupt (missing, garbled or
            unloadable files) or mismatched (other corpus, retriever or parameters); the message
            names the reason. An absent or empty folder is built without a warning.
    """
    folder = Path(folder)
    texts = [str(t) for t in texts]
    fresh = make_retriever(name, **kwargs)
    if folder.is_dir() and any(folder.iterdir()):
        reason, retriever = _stale_reason(name, texts, folder, fresh.params())
        if retriever is not None:
            logger.info("reusing %s index in %s", name, folder)
            return retriever
        message = f"rebuilding {name} index in {folder}: {reason}"
        logger.warning(message)
        warnings.warn(message, IndexRebuildWarning, stacklevel=2)
    elif folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"index folder is a file: {folder}")
    fresh.index(texts)
    _replace(folder, fresh)
    return fresh
