"""Reader for NQ-open in the lost-in-the-middle format (Liu et al., 2023).

Each line of the ``.jsonl.gz`` (or plain ``.jsonl``) file looks like::

    {"question": "who got the first nobel prize in physics",
     "answers": ["Wilhelm Conrad Röntgen"],
     "ctxs": [{"title": "...", "text": "...", "hasanswer": true, "isgold": true}],
     "nq_annotated_gold": {"title": "...", "long_answer": "...", ...}}

The oracle file holds exactly one (gold) passage per question; the multi-document files of the
same project add retrieved distractors to ``ctxs``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from longctx.data.errors import DataError, require
from longctx.data.example import Document, Example
from longctx.data.readers.base import iter_records, register_reader


def _strings(record: dict[str, Any], key: str, path: Path, loc: str) -> list[str]:
    """``record[key]`` checked to be a list of strings (an item's error names ``key[i]``)."""
    values = require(record, key, list, path, loc)
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise DataError(
                path, loc, f"{key}[{i}]", f"expected a string, got {type(value).__name__}"
            )
    return list(values)


def _optional_bool(ctx: dict[str, Any], key: str, path: Path, loc: str, prefix: str) -> bool | None:
    """``ctx[key]`` when present (it must then be a boolean), else ``None``."""
    if key not in ctx:
        return None
    return require(ctx, key, bool, path, loc, prefix)


def _example_id(record: dict[str, Any], path: Path, loc: str) -> str:
    """The record's own ``id`` when it has one, else ``nq-<line number>``."""
    if isinstance(record, dict) and "id" in record:
        return str(require(record, "id", (str, int), path, loc))
    return "nq-" + loc.split()[-1]


@register_reader("nq")
def read_nq(path: Path, **options: Any) -> list[Example]:
    """Read NQ-open (lost-in-the-middle format) into examples.

    Documents are the ``ctxs`` in file order, with ids ``ctx0``, ``ctx1``, ...; a document is
    gold when its ``isgold`` flag is true (a missing flag means not gold).

    Args:
        path: A ``.jsonl.gz`` or ``.jsonl`` file.
        **options: None are accepted.

    Returns:
        Examples with ``task="nq"``, ``answers`` as given, and ``meta`` holding ``hasanswer``
        (one flag or ``None`` per document) and ``nq_annotated_gold`` when the record has it.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DataError: A record is malformed (the message names file, line and field).
        TypeError: An unknown option was given.
    """
    if options:
        raise TypeError(f"nq reader: unexpected option(s): {', '.join(sorted(options))}")
    examples: list[Example] = []
    for loc, record in iter_records(path):
        ex_id = _example_id(record, path, loc)
        question = require(record, "question", str, path, loc)
        answers = _strings(record, "answers", path, loc)
        documents: list[Document] = []
        hasanswer: list[bool | None] = []
        for i, ctx in enumerate(require(record, "ctxs", list, path, loc)):
            prefix = f"ctxs[{i}]"
            title = require(ctx, "title", str, path, loc, prefix)
            text = require(ctx, "text", str, path, loc, prefix)
            is_gold = _optional_bool(ctx, "isgold", path, loc, prefix)
            hasanswer.append(_optional_bool(ctx, "hasanswer", path, loc, prefix))
            documents.append(Document(id=f"ctx{i}", title=title, text=text, is_gold=bool(is_gold)))
        meta: dict[str, Any] = {"hasanswer": hasanswer}
        if "nq_annotated_gold" in record:
            meta["nq_annotated_gold"] = require(record, "nq_annotated_gold", dict, path, loc)
        examples.append(
            Example(
                id=ex_id,
                question=question,
                answers=answers,
                documents=documents,
                task="nq",
                meta=meta,
            )
        )
    return examples
