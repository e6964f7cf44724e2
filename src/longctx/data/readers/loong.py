"""Reader for Loong (MozerWang/Loong): questions over several long documents.

The questions file is jsonl; each line looks like::

    {"id": "12588c71-...", "level": 4, "set": 2, "length": 62104, "type": "financial",
     "language": "en", "question": "...", "instruction": "...",
     "prompt_template": "{docs}\\n\\n{instruction}\\n\\n{question}",
     "doc": ["2023-avni123123form10k", "2024-avni123123form10k"],
     "answer": "..." or {"high assets": ["..."], ...}, "shuffle_doc": true}

The documents are ``.txt`` files in a folder next to the questions (``doc_financial/`` here;
upstream ``doc/<type>/``). A name in ``doc[]`` is either a file stem, or, as upstream resolves
financial reports, the company name of the file ``2024-<name>-j.txt`` (any stem containing
``2024-<name>`` for levels 1-3, or containing ``<name>`` for level 4, when unique).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from longctx.data.errors import DataError, check_exists, require
from longctx.data.example import Document, Example
from longctx.data.readers.base import iter_jsonl, register_reader


def _locate(path: Path, docs_dir: str | Path | None) -> tuple[Path, Path]:
    """The questions file and the documents folder for ``path`` (file or folder).

    Raises:
        FileNotFoundError: A path is missing, or no questions file / documents folder is found.
        ValueError: The folder holds several ``*.jsonl`` files or several ``doc*`` folders.
    """
    check_exists(path, "Loong data")
    questions = path
    if path.is_dir():
        found = sorted(p for p in path.glob("*.jsonl") if p.is_file())
        if not found:
            raise FileNotFoundError(f"no questions *.jsonl file in Loong folder: {path}")
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise ValueError(
                f"several *.jsonl files in Loong folder {path} ({names}); "
                f"pass the questions file itself"
            )
        questions = found[0]
    if docs_dir is not None:
        return questions, check_exists(docs_dir, "Loong documents folder")
    dirs = sorted(p for p in questions.parent.iterdir() if p.is_dir() and p.name.startswith("doc"))
    if not dirs:
        raise FileNotFoundError(f"no doc* folder next to {questions}; pass docs_dir")
    if len(dirs) > 1:
        raise ValueError(
            f"several doc* folders next to {questions} "
            f"({', '.join(p.name for p in dirs)}); pass docs_dir"
        )
    return questions, dirs[0]


class _Documents:
    """Resolves document names to files and caches their texts (shared between questions)."""

    def __init__(self, root: Path):
        self.root = root
        self._stems: dict[Path, dict[str, Path]] = {}
        self._texts: dict[Path, str] = {}

    def _index(self, folder: Path) -> dict[str, Path]:
        if folder not in self._stems:
            files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix == ".txt")
            self._stems[folder] = {p.stem: p for p in files}
        return self._stems[folder]

    def resolve(self, name: str, level: int, doc_type: str) -> tuple[Path | None, str]:
        """The file for ``name`` (``None`` when absent) and a description of what was tried."""
        folder = self.root / doc_type if (self.root / doc_type).is_dir() else self.root
        stems = self._index(folder)
        tried = f"{folder / (name + '.txt')} or a file like '2024-{name}-j.txt'"
        if name in stems:
            return stems[name], tried
        if (folder / name).is_file():
            return folder / name, tried
        preferred = f"2024-{name}-j"
        if preferred in stems:
            return stems[preferred], tried
        pattern = f"2024-{name}" if level != 4 else name
        matches = [stem for stem in stems if pattern in stem]
        if len(matches) > 1:
            return None, f"{tried}: ambiguous, matches {', '.join(matches)}"
        return (stems[matches[0]] if matches else None), tried

    def text(self, file: Path) -> str:
        """The file's text, read once."""
        if file not in self._texts:
            self._texts[file] = file.read_text(encoding="utf-8")
        return self._texts[file]


def _serialise(answer: str | dict[str, Any]) -> str:
    """The answer as one string: a string as is, a dict as sorted-key JSON."""
    return answer if isinstance(answer, str) else json.dumps(answer, sort_keys=True)


@register_reader("loong")
def read_loong(path: Path, docs_dir: str | Path | None = None, **options: Any) -> list[Example]:
    """Read Loong questions with their documents loaded.

    Args:
        path: The questions ``*.jsonl`` file, or a folder holding exactly one of them and one
            ``doc*`` folder.
        docs_dir: The documents folder, when it is not the single ``doc*`` folder next to the
            questions file.
        **options: None other are accepted.

    Returns:
        Examples with ``task="loong"``; documents in ``doc[]`` order, each with id and title the
        listed name and the file's full text (``is_gold`` is true: every listed document is
        needed). ``answers`` is the answer serialised to one string; ``meta`` keeps the raw
        ``answer``, ``level``, ``set``, ``length``, ``instruction``, ``prompt_template``,
        ``shuffle_doc``, ``type``, ``language`` (when present) and ``doc_files``.

    Raises:
        FileNotFoundError: A path is missing, or no questions file or documents folder is found.
        DataError: A record is malformed or names a document with no file (field ``doc[i]``).
        TypeError: An unknown option was given.
    """
    if options:
        raise TypeError(f"loong reader: unexpected option(s): {', '.join(sorted(options))}")
    questions, root = _locate(path, docs_dir)
    store = _Documents(root)
    examples: list[Example] = []
    for loc, record in iter_jsonl(questions):
        ex_id = require(record, "id", str, questions, loc)
        question = require(record, "question", str, questions, loc)
        answer = require(record, "answer", (str, dict), questions, loc)
        level = require(record, "level", int, questions, loc)
        doc_type = require(record, "type", str, questions, loc)
        meta: dict[str, Any] = {"answer": answer, "level": level}
        for key, kind in (
            ("set", int),
            ("length", int),
            ("instruction", str),
            ("prompt_template", str),
            ("shuffle_doc", bool),
        ):
            meta[key] = require(record, key, kind, questions, loc)
        meta["type"] = doc_type
        if "language" in record:
            meta["language"] = require(record, "language", str, questions, loc)
        documents: list[Document] = []
        files: list[str] = []
        for i, name in enumerate(require(record, "doc", list, questions, loc)):
            if not isinstance(name, str):
                raise DataError(
                    questions, loc, f"doc[{i}]", f"expected a string, got {type(name).__name__}"
                )
            if any(d.id == name for d in documents):
                raise DataError(questions, loc, f"doc[{i}]", f"document {name!r} listed twice")
            file, tried = store.resolve(name, level, doc_type)
            if file is None:
                raise DataError(
                    questions, loc, f"doc[{i}]", f"no document file for {name!r}: expected {tried}"
                )
            documents.append(Document(id=name, title=name, text=store.text(file), is_gold=True))
            files.append(file.name)
        meta["doc_files"] = files
        examples.append(
            Example(
                id=ex_id,
                question=question,
                answers=[_serialise(answer)],
                documents=documents,
                task="loong",
                meta=meta,
            )
        )
    return examples
