"""Reader for LongBench v2 (THUDM), multiple choice over one long context.

A file is a JSON list of records such as::

    {"_id": "66f36490...", "domain": "Single-Document QA", "sub_domain": "Financial",
     "difficulty": "easy", "length": "short", "question": "...",
     "choice_A": "...", "choice_B": "...", "choice_C": "...", "choice_D": "...",
     "answer": "D", "context": "..."}

The upstream release is one ``data.json``; a folder of several such files (e.g. split by domain)
is read file by file in sorted order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from longctx.data.errors import DataError, check_exists, require
from longctx.data.example import Document, Example
from longctx.data.readers.base import iter_records, register_reader

LETTERS = ("A", "B", "C", "D")
_META_FIELDS = ("domain", "sub_domain", "difficulty", "length")


def _files(path: Path) -> list[Path]:
    """``path`` itself, or every ``*.json`` file in the folder ``path`` in sorted order.

    Raises:
        FileNotFoundError: ``path`` does not exist, or the folder holds no ``*.json`` file.
    """
    check_exists(path, "LongBench v2 data")
    if not path.is_dir():
        return [path]
    files = sorted(p for p in path.glob("*.json") if p.is_file())
    if not files:
        raise FileNotFoundError(f"no *.json files in LongBench v2 folder: {path}")
    return files


def _example(record: Any, path: Path, loc: str) -> Example:
    """One LongBench v2 record as an example with a single context document."""
    ex_id = require(record, "_id", str, path, loc)
    question = require(record, "question", str, path, loc)
    options = {letter: require(record, f"choice_{letter}", str, path, loc) for letter in LETTERS}
    answer = require(record, "answer", str, path, loc)
    if answer not in LETTERS:
        raise DataError(path, loc, "answer", f"expected one of A, B, C, D, got {answer!r}")
    context = require(record, "context", str, path, loc)
    meta: dict[str, Any] = {"options": options}
    for key in _META_FIELDS:
        meta[key] = require(record, key, str, path, loc)
    return Example(
        id=ex_id,
        question=question,
        answers=[answer],
        documents=[Document(id="context", title="", text=context, is_gold=False)],
        task="longbench_v2",
        meta=meta,
    )


@register_reader("longbench_v2")
def read_longbench_v2(path: Path, **options: Any) -> list[Example]:
    """Read LongBench v2 records into multiple-choice examples.

    Args:
        path: A JSON list file, or a folder whose ``*.json`` files are read in sorted order.
        **options: None are accepted.

    Returns:
        Examples with ``task="longbench_v2"``, ``answers=[letter]``, one document (id
        ``"context"``) holding the whole context, and ``meta`` with ``options`` (``{"A": ...,
        "D": ...}``), ``domain``, ``sub_domain``, ``difficulty`` and ``length``.

    Raises:
        FileNotFoundError: ``path`` does not exist, or a folder holds no ``*.json`` file.
        DataError: A record is malformed (the message names file, index and field).
        TypeError: An unknown option was given.
    """
    if options:
        raise TypeError(f"longbench_v2 reader: unexpected option(s): {', '.join(sorted(options))}")
    examples: list[Example] = []
    for file in _files(path):
        examples.extend(_example(record, file, loc) for loc, record in iter_records(file))
    return examples
