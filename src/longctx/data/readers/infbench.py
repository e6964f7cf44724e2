"""Reader for InfiniteBench (Zhang et al., 2024, "∞Bench: Extending Long Context Evaluation
Beyond 100K Tokens"), the English novel tasks.

Each task is one jsonl file (``longbook_choice_eng.jsonl``, ``longbook_qa_eng.jsonl``,
``longbook_sum_eng.jsonl``); every line holds one question about one book::

    {"id": 0, "context": "<the whole book>", "input": "<question, may be empty>",
     "answer": ["<gold>", ...], "options": ["<A>", "<B>", "<C>", "<D>"]}

``options`` is empty (or absent) outside multiple choice. For multiple choice, ``answer`` holds
the text of the correct option (a bare letter is accepted too); the reader turns it into the
letter.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

from longctx.data.errors import DataError, check_exists, require
from longctx.data.example import Document, Example
from longctx.data.readers.base import iter_jsonl, register_reader

LETTERS = string.ascii_uppercase


def _files(path: Path) -> list[Path]:
    """``path`` itself, or every ``*.jsonl`` file in the folder ``path`` in sorted order."""
    check_exists(path, "InfiniteBench data")
    if not path.is_dir():
        return [path]
    files = sorted(p for p in path.glob("*.jsonl") if p.is_file())
    if not files:
        raise FileNotFoundError(f"no *.jsonl files in InfiniteBench folder: {path}")
    return files


def _strings(value: Any, field: str, path: Path, loc: str) -> list[str]:
    """A string or a list of strings as a list (an item's error names ``field[i]``)."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise DataError(path, loc, field, f"expected a list of strings, got {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise DataError(
                path, loc, f"{field}[{i}]", f"expected a string, got {type(item).__name__}"
            )
    return list(value)


def _gold_letters(answers: list[str], options: dict[str, str], path: Path, loc: str) -> list[str]:
    """The option letters of the gold answers (given as option texts or as letters)."""
    by_text = {text.strip(): letter for letter, text in options.items()}
    letters: list[str] = []
    for answer in answers:
        key = answer.strip()
        letter = by_text.get(key) or (key.upper() if key.upper() in options else None)
        if letter is None:
            raise DataError(
                path, loc, "answer", f"{answer[:80]!r} is neither an option nor a letter"
            )
        if letter not in letters:
            letters.append(letter)
    if not letters:
        raise DataError(path, loc, "answer", "no gold answer")
    return letters


def _example(record: Any, path: Path, loc: str) -> Example:
    """One InfiniteBench record as an example with a single context document."""
    raw_id = require(record, "id", (int, str), path, loc)
    context = require(record, "context", str, path, loc)
    question = require(record, "input", str, path, loc)
    answers = _strings(require(record, "answer", (str, list), path, loc), "answer", path, loc)
    raw_options = _strings(record.get("options") or [], "options", path, loc)
    if len(raw_options) > len(LETTERS):
        raise DataError(path, loc, "options", f"{len(raw_options)} options, at most 26 supported")
    meta: dict[str, Any] = {}
    if raw_options:
        options = dict(zip(LETTERS, raw_options, strict=False))
        meta["options"] = options
        meta["answer_text"] = answers[0]
        answers = _gold_letters(answers, options, path, loc)
    stem = path.name.removesuffix(".gz").removesuffix(".jsonl")
    return Example(
        id=f"{stem}-{raw_id}",
        question=question,
        answers=answers,
        documents=[Document(id="context", title="", text=context, is_gold=False)],
        task=f"infbench_{stem}",
        meta=meta,
    )


@register_reader("infbench")
def read_infbench(path: Path, **options: Any) -> list[Example]:
    """Read InfiniteBench task files.

    Args:
        path: One task ``.jsonl`` file, or a folder whose ``*.jsonl`` files are read in sorted
            order.
        **options: None are accepted.

    Returns:
        Examples with id ``<file stem>-<id>``, the ``input`` as question, one document (id
        ``"context"``) holding the whole context, and ``answers`` the gold list. With options,
        ``meta["options"]`` is ``{"A": ..., "D": ...}``, ``answers`` holds the gold letter(s) and
        ``meta["answer_text"]`` the first gold answer as written.

    Raises:
        FileNotFoundError: ``path`` does not exist, or a folder holds no ``*.jsonl`` file.
        DataError: A record is malformed, or a multiple-choice answer matches no option.
        TypeError: An unknown option was given.
    """
    if options:
        raise TypeError(f"infbench reader: unexpected option(s): {', '.join(sorted(options))}")
    examples: list[Example] = []
    for file in _files(path):
        examples.extend(_example(record, file, loc) for loc, record in iter_jsonl(file))
    return examples
