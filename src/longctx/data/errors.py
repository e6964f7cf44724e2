"""Errors that point at the exact place in an input file that is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class DataError(ValueError):
    """A malformed input record.

    The message always names the file, the line (jsonl, 1-based) or index (JSON list, 0-based),
    and the field, e.g. ``data.jsonl:12: field 'answers': expected a list, got str``.

    Attributes:
        path: The offending file.
        location: ``"line N"`` or ``"index N"`` (or empty when the whole file is bad).
        field: Dotted name of the offending field (or empty).
    """

    def __init__(self, path: str | Path, location: str, field: str, problem: str):
        self.path = str(path)
        self.location = location
        self.field = field
        where = f"{self.path}, {location}" if location else self.path
        what = f"field '{field}': {problem}" if field else problem
        super().__init__(f"{where}: {what}")


_TYPE_NAMES = {
    str: "a string",
    list: "a list",
    dict: "an object",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
}


def require(
    record: Any,
    key: str,
    kind: type | tuple[type, ...],
    path: str | Path,
    location: str,
    prefix: str = "",
) -> Any:
    """Return ``record[key]`` after checking that it exists and has the expected type.

    Args:
        record: The parsed record (must be a dict).
        key: The field to read.
        kind: Accepted Python type(s) for the value.
        path: File the record came from (for the error message).
        location: ``"line N"`` or ``"index N"``.
        prefix: Dotted path of ``record`` inside the top-level record, e.g. ``"ctxs[3]"``.

    Raises:
        DataError: When the record is not an object, the key is missing, or the type is wrong.
    """
    name = f"{prefix}.{key}" if prefix else key
    if not isinstance(record, dict):
        raise DataError(
            path, location, prefix or "<record>", f"expected an object, got {type(record).__name__}"
        )
    if key not in record:
        raise DataError(path, location, name, "missing")
    value = record[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if bool in kinds or not isinstance(value, bool):
        if isinstance(value, kinds):
            return value
    expected = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
    raise DataError(path, location, name, f"expected {expected}, got {type(value).__name__}")


def check_exists(path: str | Path, what: str = "file") -> Path:
    """Return ``Path(path)`` or raise ``FileNotFoundError`` naming it."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{what} not found: {p}")
    return p
