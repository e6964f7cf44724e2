"""Reader for the generic HELMET / KILT-style retrieval QA format.

Each line of the jsonl (or ``.jsonl.gz``) file looks like::

    {"id": "q17", "question": "...", "answers": ["..."],
     "ctxs": [{"id": "123", "title": "...", "text": "...", "isgold": true}, ...]}

``id`` (record and passage) is optional, a single ``answer`` string may stand in for
``answers``, a passage's ``title`` may be absent, and gold passages are flagged by ``isgold`` or
``is_gold``. ``has_answer`` / ``hasanswer`` flags are kept in ``meta`` but do not make a passage
gold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from longctx.data.errors import DataError, require
from longctx.data.example import Document, Example
from longctx.data.readers.base import iter_records, register_reader

_GOLD_KEYS = ("isgold", "is_gold")
_HAS_ANSWER_KEYS = ("has_answer", "hasanswer")


def _answers(record: dict[str, Any], path: Path, loc: str) -> list[str]:
    """``answers`` (a list of strings), or ``[answer]`` when only ``answer`` is given."""
    if "answers" not in record and "answer" in record:
        return [require(record, "answer", str, path, loc)]
    values = require(record, "answers", list, path, loc)
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise DataError(
                path, loc, f"answers[{i}]", f"expected a string, got {type(value).__name__}"
            )
    return list(values)


def _first_flag(
    ctx: dict[str, Any], keys: tuple[str, ...], path: Path, loc: str, prefix: str
) -> bool | None:
    """The first of ``keys`` present in ``ctx`` (it must be a boolean), else ``None``."""
    for key in keys:
        if key in ctx:
            return require(ctx, key, bool, path, loc, prefix)
    return None


def _document(ctx: Any, i: int, path: Path, loc: str) -> tuple[Document, bool | None]:
    """The document for ``ctxs[i]`` and its has-answer flag (``None`` when absent)."""
    prefix = f"ctxs[{i}]"
    text = require(ctx, "text", str, path, loc, prefix)
    title = require(ctx, "title", str, path, loc, prefix) if "title" in ctx else ""
    doc_id = str(require(ctx, "id", (str, int), path, loc, prefix)) if "id" in ctx else f"ctx{i}"
    is_gold = _first_flag(ctx, _GOLD_KEYS, path, loc, prefix)
    has_answer = _first_flag(ctx, _HAS_ANSWER_KEYS, path, loc, prefix)
    return Document(id=doc_id, title=title, text=text, is_gold=bool(is_gold)), has_answer


@register_reader("kilt")
def read_kilt(path: Path, task: str = "kilt", **options: Any) -> list[Example]:
    """Read KILT-style question/passages records into examples.

    Args:
        path: A ``.jsonl`` or ``.jsonl.gz`` file (a ``.json`` list file also works).
        task: The task name stored on every example; also the prefix of generated ids.
        **options: None other are accepted.

    Returns:
        Examples whose documents are the ``ctxs`` in file order (id: the passage's ``id`` or
        ``ctx<i>``); ``meta["has_answer"]`` holds per-document flags when any passage has one.
        Records without an ``id`` get ``<task>-<line>`` (``<task>-<index>`` for a list file).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DataError: A record is malformed, or two passages of one record share an id.
        TypeError: An unknown option was given.
    """
    if options:
        raise TypeError(f"kilt reader: unexpected option(s): {', '.join(sorted(options))}")
    examples: list[Example] = []
    for loc, record in iter_records(path):
        if isinstance(record, dict) and "id" in record:
            ex_id = str(require(record, "id", (str, int), path, loc))
        else:
            ex_id = f"{task}-{loc.split()[-1]}"
        question = require(record, "question", str, path, loc)
        answers = _answers(record, path, loc)
        documents: list[Document] = []
        flags: list[bool | None] = []
        seen: dict[str, int] = {}
        for i, ctx in enumerate(require(record, "ctxs", list, path, loc)):
            doc, has_answer = _document(ctx, i, path, loc)
            if doc.id in seen:
                raise DataError(
                    path,
                    loc,
                    f"ctxs[{i}].id",
                    f"duplicate document id {doc.id!r} (also ctxs[{seen[doc.id]}])",
                )
            seen[doc.id] = i
            documents.append(doc)
            flags.append(has_answer)
        meta: dict[str, Any] = {}
        if any(flag is not None for flag in flags):
            meta["has_answer"] = flags
        examples.append(
            Example(
                id=ex_id,
                question=question,
                answers=answers,
                documents=documents,
                task=task,
                meta=meta,
            )
        )
    return examples
