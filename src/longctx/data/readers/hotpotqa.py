"""Reader for HotpotQA in its official list format (distractor or fullwiki setting).

Each record looks like::

    {"_id": "5a7d...", "question": "...", "answer": "Yellowcraig",
     "supporting_facts": [["Yellowcraigs", 0], ["Dirleton Castle", 0]],
     "context": [["Yellowcraigs", ["Yellowcraigs is ...", " It lies ..."]], ...],
     "type": "bridge", "level": "hard"}

The file is normally one JSON list (``.json``); a ``.jsonl`` file holding one such record per line
is read the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from longctx.data.errors import DataError, require
from longctx.data.example import Document, Example
from longctx.data.readers.base import iter_records, register_reader


def _item(values: list[Any], index: int, kind: type, path: Path, loc: str, name: str) -> Any:
    """Return ``values[index]`` after checking that it exists and has type ``kind``.

    Args:
        values: A positional record such as ``[title, sent_id]``.
        index: The position to read.
        kind: The expected Python type (``bool`` never passes for ``int``).
        path: File the record came from.
        loc: ``"line N"`` or ``"index N"``.
        name: Dotted field name of the item, e.g. ``"supporting_facts[3][1]"``.

    Raises:
        DataError: When the item is missing or has the wrong type.
    """
    if index >= len(values):
        raise DataError(path, loc, name, "missing")
    value = values[index]
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise DataError(path, loc, name, f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _paragraphs(record: dict[str, Any], path: Path, loc: str) -> list[tuple[str, str]]:
    """The ``(title, text)`` of each context paragraph, sentences joined as given."""
    paragraphs: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for i, para in enumerate(require(record, "context", list, path, loc)):
        name = f"context[{i}]"
        if not isinstance(para, list):
            raise DataError(
                path, loc, name, f"expected a [title, sentences] list, got {type(para).__name__}"
            )
        title = _item(para, 0, str, path, loc, f"{name}[0]")
        sentences = _item(para, 1, list, path, loc, f"{name}[1]")
        for j, sentence in enumerate(sentences):
            if not isinstance(sentence, str):
                raise DataError(
                    path, loc, f"{name}[1][{j}]", f"expected str, got {type(sentence).__name__}"
                )
        if title in seen:
            raise DataError(
                path,
                loc,
                f"{name}[0]",
                f"duplicate title {title!r} (also context[{seen[title]}][0])",
            )
        seen[title] = i
        # HotpotQA sentences carry their own leading whitespace: join them without a separator.
        paragraphs.append((title, "".join(sentences)))
    return paragraphs


def _supporting_facts(
    record: dict[str, Any], titles: set[str], path: Path, loc: str
) -> list[list[Any]]:
    """The ``[title, sent_id]`` pairs, each title checked against the context titles."""
    facts: list[list[Any]] = []
    for i, fact in enumerate(require(record, "supporting_facts", list, path, loc)):
        name = f"supporting_facts[{i}]"
        if not isinstance(fact, list):
            raise DataError(
                path, loc, name, f"expected a [title, sent_id] list, got {type(fact).__name__}"
            )
        title = _item(fact, 0, str, path, loc, f"{name}[0]")
        sent_id = _item(fact, 1, int, path, loc, f"{name}[1]")
        if title not in titles:
            raise DataError(path, loc, f"{name}[0]", f"title {title!r} is not in the context")
        facts.append([title, sent_id])
    return facts


@register_reader("hotpotqa")
def read_hotpotqa(path: Path, **options: Any) -> list[Example]:
    """Read HotpotQA records into examples, one document per context paragraph.

    Documents keep the source order; a paragraph is gold when its title appears among the
    supporting facts. The document text is the paragraph's sentences joined as they are (each
    sentence after the first starts with its own space).

    Args:
        path: A ``.json`` list file or a ``.jsonl`` file of HotpotQA records.
        **options: None are accepted.

    Returns:
        Examples with ``task="hotpotqa"``, ``answers=[answer]`` and ``meta`` holding ``type``,
        ``level`` and ``supporting_facts``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DataError: A record is malformed (the message names file, location and field).
        TypeError: An unknown option was given.
    """
    if options:
        raise TypeError(f"hotpotqa reader: unexpected option(s): {', '.join(sorted(options))}")
    examples: list[Example] = []
    for loc, record in iter_records(path):
        ex_id = require(record, "_id", str, path, loc)
        question = require(record, "question", str, path, loc)
        answer = require(record, "answer", str, path, loc)
        paragraphs = _paragraphs(record, path, loc)
        facts = _supporting_facts(record, {t for t, _ in paragraphs}, path, loc)
        qtype = require(record, "type", str, path, loc)
        level = require(record, "level", str, path, loc)
        gold_titles = {title for title, _ in facts}
        documents = [
            Document(id=title, title=title, text=text, is_gold=title in gold_titles)
            for title, text in paragraphs
        ]
        examples.append(
            Example(
                id=ex_id,
                question=question,
                answers=[answer],
                documents=documents,
                task="hotpotqa",
                meta={"type": qtype, "level": level, "supporting_facts": facts},
            )
        )
    return examples
