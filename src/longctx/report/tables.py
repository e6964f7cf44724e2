"""Report tables: a small table type with raw values, and its display formats.

Cells hold raw values (scores as fractions 0..1, relative changes in %), formatted only when
rendered; ``None`` is a missing cell, shown as ``—`` and never as zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from longctx.data.context import format_length

Cell = str | int | float | None
Format = Literal["text", "pct", "signed", "points", "int"]
MISSING = "—"


@dataclass
class Table:
    """A titled table of raw values.

    Attributes:
        key: Short identifier (``in_domain``, ``relative_drop``, ...).
        title: Heading shown above the table.
        columns: Column headers.
        formats: One display format per column: ``text``; ``pct`` (a 0..1 score shown as a
            percentage, 1 decimal); ``signed`` (a value already in %, shown with its sign);
            ``points`` (a 0..1 difference shown in signed percentage points); ``int``.
        rows: Raw cells; ``None`` is missing.
        marks: Footnote marks appended to formatted cells, by ``(row, column)`` index.
        notes: Lines shown under the table.
    """

    key: str
    title: str
    columns: list[str]
    formats: list[Format]
    rows: list[list[Cell]] = field(default_factory=list)
    marks: dict[tuple[int, int], str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.columns) != len(self.formats):
            raise ValueError(f"table {self.key}: {len(self.columns)} columns, formats differ")

    def find(self, **match: Any) -> list[list[Cell]]:
        """Rows whose cells equal every keyword (column name with spaces as underscores)."""
        idx = {c.replace(" ", "_"): i for i, c in enumerate(self.columns)}
        unknown = set(match) - set(idx)
        if unknown:
            raise KeyError(f"table {self.key} has no columns {sorted(unknown)}")
        return [r for r in self.rows if all(r[idx[k]] == v for k, v in match.items())]

    def value(self, column: str, **match: Any) -> Cell:
        """The cell in ``column`` of the one row matching ``match``."""
        rows = self.find(**match)
        if len(rows) != 1:
            raise KeyError(f"table {self.key}: {len(rows)} rows match {match}")
        return rows[0][self.columns.index(column)]

    def formatted(self) -> list[list[str]]:
        """Every cell as displayed (with footnote marks)."""
        return [
            [
                format_cell(cell, self.formats[j]) + self.marks.get((i, j), "")
                for j, cell in enumerate(row)
            ]
            for i, row in enumerate(self.rows)
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (raw values; missing cells are ``null``)."""
        return {
            "key": self.key,
            "title": self.title,
            "columns": self.columns,
            "formats": self.formats,
            "rows": self.rows,
            "notes": self.notes,
        }


def format_cell(value: Cell, fmt: Format) -> str:
    """Display one cell: missing as ``—``, scores as percentages with one decimal."""
    if value is None or (isinstance(value, float) and value != value):
        return MISSING
    if fmt == "text" or isinstance(value, str):
        return str(value)
    if fmt == "pct":
        return f"{value * 100:.1f}"
    if fmt == "signed":
        return f"{value:+.1f}"
    if fmt == "points":
        return f"{value * 100:+.1f}"
    return str(int(value))


def length_header(length: int) -> str:
    """Column header of a context length (``0`` is a group without a length)."""
    return format_length(length) if length else "no length"


def context_label(context: str, method: str = "") -> str:
    """Display name of a context kind (``RAG (bm25)``, ``gold only``, ...)."""
    return {
        "full": "full",
        "rag": f"RAG ({method})",
        "gold": "gold only",
        "none": "no context",
        "compressed": f"full, {method}",
        "other": f"full ({method})",
    }.get(context, context)


def ratio_header(ratio: float) -> str:
    return f"{ratio:g}"
