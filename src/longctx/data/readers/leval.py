"""Reader for L-Eval (OpenLMLab) long-document tasks.

Each line of a task file (``coursera.jsonl``, ``quality.jsonl``, ``legal_contract_qa.jsonl``, ...)
holds one long document and several questions about it::

    {"input": "<the document>", "instructions": ["Question 1. ...\\nA. ...", ...],
     "outputs": ["C", ...], "source": "coursera_a", "evaluation": "exam"}

Every ``(record, instruction)`` pair becomes one example. Multiple-choice tasks (coursera,
quality, tpo) keep their options inside the instruction exactly as written, and the gold output as
given (a letter, or the full option text for quality).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from longctx.data.errors import DataError, check_exists, require
from longctx.data.example import Document, Example
from longctx.data.readers.base import iter_jsonl, register_reader


def _files(path: Path) -> list[Path]:
    """``path`` itself, or every ``*.jsonl`` file in the folder ``path`` in sorted order.

    Raises:
        FileNotFoundError: ``path`` does not exist, or the folder holds no ``*.jsonl`` file.
    """
    check_exists(path, "L-Eval data")
    if not path.is_dir():
        return [path]
    files = sorted(p for p in path.glob("*.jsonl") if p.is_file())
    if not files:
        raise FileNotFoundError(f"no *.jsonl files in L-Eval folder: {path}")
    return files


def _strings(record: Any, key: str, path: Path, loc: str) -> list[str]:
    """``record[key]`` checked to be a list of strings (an item's error names ``key[i]``)."""
    values = require(record, key, list, path, loc)
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise DataError(
                path, loc, f"{key}[{i}]", f"expected a string, got {type(value).__name__}"
            )
    return list(values)


def _task_name(file: Path) -> str:
    """The file stem, without a ``.jsonl`` left over from ``.jsonl.gz``."""
    name = file.name
    for suffix in (".gz", ".jsonl"):
        name = name.removesuffix(suffix)
    return name


def _read_file(file: Path) -> list[Example]:
    """Examples of one L-Eval task file."""
    stem = _task_name(file)
    examples: list[Example] = []
    for loc, record in iter_jsonl(file):
        text = require(record, "input", str, file, loc)
        instructions = _strings(record, "instructions", file, loc)
        outputs = _strings(record, "outputs", file, loc)
        if len(outputs) != len(instructions):
            raise DataError(
                file,
                loc,
                "outputs",
                f"has {len(outputs)} items but instructions has {len(instructions)}",
            )
        source = require(record, "source", str, file, loc)
        evaluation = require(record, "evaluation", str, file, loc)
        line = loc.split()[-1]
        for j, (instruction, output) in enumerate(zip(instructions, outputs, strict=True)):
            examples.append(
                Example(
                    id=f"{stem}-{line}-{j}",
                    question=instruction,
                    answers=[output],
                    documents=[Document(id="input", title="", text=text, is_gold=False)],
                    task=f"leval_{stem}",
                    meta={"evaluation": evaluation, "source": source},
                )
            )
    return examples


@register_reader("leval")
def read_leval(path: Path, **options: Any) -> list[Example]:
    """Read L-Eval task files, one example per instruction.

    Args:
        path: One task ``.jsonl`` file, or a folder whose ``*.jsonl`` files are read in sorted
            order.
        **options: None are accepted.

    Returns:
        Examples with id ``<file stem>-<line>-<j>``, ``task="leval_<file stem>"``, the
        instruction as question, ``answers=[outputs[j]]``, the record's ``input`` as the single
        document (id ``"input"``, shared between the record's examples), and ``meta`` holding the
        record's ``evaluation`` and ``source``.

    Raises:
        FileNotFoundError: ``path`` does not exist, or a folder holds no ``*.jsonl`` file.
        DataError: A record is malformed, or its instructions and outputs differ in number.
        TypeError: An unknown option was given.
    """
    if options:
        raise TypeError(f"leval reader: unexpected option(s): {', '.join(sorted(options))}")
    examples: list[Example] = []
    for file in _files(path):
        examples.extend(_read_file(file))
    return examples
