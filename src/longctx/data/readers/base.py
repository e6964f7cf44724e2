"""Line- and index-aware parsing shared by every reader, and the reader registry."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from longctx.data.errors import DataError, check_exists
from longctx.data.example import Example

Reader = Callable[..., list[Example]]
READERS: dict[str, Reader] = {}


def register_reader(name: str) -> Callable[[Reader], Reader]:
    """Register a reader function under an exact format name."""

    def wrap(fn: Reader) -> Reader:
        if name in READERS:
            raise ValueError(f"reader {name!r} registered twice")
        READERS[name] = fn
        return fn

    return wrap


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def iter_jsonl(path: str | Path) -> Iterator[tuple[str, Any]]:
    """Yield ``("line N", record)`` for each non-blank line of a jsonl (or .jsonl.gz) file.

    Raises:
        FileNotFoundError: The file does not exist (the message names it).
        DataError: A line is not valid JSON (names the file, line and the JSON error).
    """
    p = check_exists(path)
    with _open_text(p) as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(
                    p, f"line {number}", "", f"invalid JSON ({err.msg}, column {err.colno})"
                ) from None
            yield f"line {number}", record


def load_json(path: str | Path) -> Any:
    """Parse a whole JSON file; a syntax error (e.g. truncation) names the file and line.

    Raises:
        FileNotFoundError: The file does not exist.
        DataError: The file is not valid JSON.
    """
    p = check_exists(path)
    with _open_text(p) as fh:
        text = fh.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(
            p, f"line {err.lineno}", "", f"invalid JSON ({err.msg}, column {err.colno})"
        ) from None


def iter_json_list(path: str | Path) -> Iterator[tuple[str, Any]]:
    """Yield ``("index N", record)`` for each item of a JSON file holding a list."""
    data = load_json(path)
    if not isinstance(data, list):
        raise DataError(path, "", "", f"expected a JSON list of records, got {type(data).__name__}")
    for i, record in enumerate(data):
        yield f"index {i}", record


def iter_records(path: str | Path) -> Iterator[tuple[str, Any]]:
    """Records of a ``.json`` list file or a ``.jsonl``/``.jsonl.gz`` file, with their location."""
    name = Path(path).name
    if name.endswith(".json") or name.endswith(".json.gz"):
        return iter_json_list(path)
    return iter_jsonl(path)


def read_examples(
    fmt: str, path: str | Path, limit: int | None = None, **kwargs: Any
) -> list[Example]:
    """Read examples with the reader registered as ``fmt``.

    Args:
        fmt: A name from :data:`READERS` (e.g. ``"hotpotqa"``, ``"nq"``, ``"kilt"``).
        path: The input file or folder.
        limit: Keep at most this many examples (the first ones, in file order).
        **kwargs: Reader-specific options.
    """
    if fmt not in READERS:
        raise KeyError(f"unknown data format {fmt!r}; known: {', '.join(sorted(READERS))}")
    examples = READERS[fmt](Path(path), **kwargs)
    return examples[:limit] if limit is not None else examples
