"""Append-as-you-go jsonl files that survive interruption."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def read_jsonl_tolerant(path: str | Path) -> list[dict[str, Any]]:
    """Read the records of a jsonl file written by :class:`JsonlAppender`.

    A run killed mid-write can leave a partial last line; it is dropped (with a warning) and the
    file is cut back to its last complete record, so that appending continues cleanly. A bad line
    anywhere else is an error naming the file and line, and nothing is changed.
    """
    p = Path(path)
    if not p.exists():
        return []
    raw = p.read_bytes()
    lines = raw.split(b"\n")
    records: list[dict[str, Any]] = []
    good_bytes = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            good_bytes += len(line) + 1
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            is_last = all(not rest.strip() for rest in lines[number:])
            if not is_last:
                raise ValueError(f"{p}, line {number}: invalid JSON ({err.msg})") from None
            logger.warning(
                "%s, line %d: dropping a partial record left by an interrupted run", p, number
            )
            with open(p, "r+b") as fh:
                fh.truncate(good_bytes)
            break
        good_bytes += len(line) + 1
    return records


class JsonlAppender:
    """Appends one JSON record per line and flushes it to disk at once."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                needs_newline = fh.read(1) != b"\n"
            if needs_newline:
                with open(self.path, "ab") as fh:
                    fh.write(b"\n")
        self._fh = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_jsonl_plain(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield the records of a jsonl file (strict)."""
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}, line {number}: invalid JSON ({err.msg})") from None
