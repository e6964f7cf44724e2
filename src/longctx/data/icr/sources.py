"""Read the QA sources and the passage corpus that hard negatives are retrieved from.

The default corpus is every passage of every source, split into the disjoint 100-word passages of
DPR (Karpukhin et al., 2020) and de-duplicated by text. Malformed input raises
:class:`~longctx.data.errors.DataError` naming the file and line (or index) and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from longctx.data.errors import DataError, require
from longctx.data.example import Document, Example
from longctx.data.icr.config import SourceSpec
from longctx.data.readers import read_examples
from longctx.data.readers.base import iter_jsonl, iter_records
from longctx.retrieval.chunking import split_passages

SYNTHETIC_DEFAULT_N = 200


def read_source(spec: SourceSpec, seed: int = 0) -> list[Example]:
    """The examples of one source (``2wiki`` is read by :func:`read_2wiki`).

    Raises:
        FileNotFoundError: The file does not exist.
        DataError: A record is malformed (file, line or index, and field named).
    """
    if spec.format == "synthetic" and spec.path is None:
        from longctx.data.synthetic import generate_synthetic

        return generate_synthetic(n=spec.limit or SYNTHETIC_DEFAULT_N, seed=seed)
    assert spec.path is not None
    if spec.format == "2wiki":
        examples = read_2wiki(Path(spec.path))
        return examples[: spec.limit] if spec.limit else examples
    return read_examples(spec.format, spec.path, limit=spec.limit)


def _sentences(para: Any, path: Path, loc: str, name: str) -> tuple[str, str]:
    if not isinstance(para, list) or len(para) < 2:
        raise DataError(path, loc, name, "expected a [title, sentences] list")
    title, sentences = para[0], para[1]
    if not isinstance(title, str):
        raise DataError(path, loc, f"{name}[0]", f"expected str, got {type(title).__name__}")
    if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
        raise DataError(path, loc, f"{name}[1]", "expected a list of strings")
    # HotpotQA sentences carry their leading space; 2WikiMultihopQA sentences do not.
    text = "".join(s if i == 0 or s[:1].isspace() else " " + s for i, s in enumerate(sentences))
    return title, text


def read_2wiki(path: Path) -> list[Example]:
    """Read 2WikiMultihopQA (Ho et al., 2020) records, HotpotQA's format without ``level``.

    Each record has ``_id``, ``question``, ``answer``, ``context`` (``[title, [sentences]]``)
    and ``supporting_facts`` (``[title, sent_id]``); ``type`` and ``evidences`` are kept in
    ``meta`` when present. A paragraph is gold when its title is a supporting fact's title.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DataError: A record is malformed.
    """
    examples: list[Example] = []
    for loc, record in iter_records(path):
        ex_id = str(require(record, "_id", (str, int), path, loc))
        question = require(record, "question", str, path, loc)
        answer = require(record, "answer", str, path, loc)
        paragraphs: dict[str, str] = {}
        for i, para in enumerate(require(record, "context", list, path, loc)):
            title, text = _sentences(para, path, loc, f"context[{i}]")
            paragraphs.setdefault(title, text)
        gold: set[str] = set()
        for i, fact in enumerate(require(record, "supporting_facts", list, path, loc)):
            if not isinstance(fact, list) or not fact or not isinstance(fact[0], str):
                raise DataError(path, loc, f"supporting_facts[{i}]", "expected [title, sent_id]")
            if fact[0] not in paragraphs:
                raise DataError(
                    path, loc, f"supporting_facts[{i}][0]", f"title {fact[0]!r} not in context"
                )
            gold.add(fact[0])
        docs = [Document(t, t, text, t in gold) for t, text in paragraphs.items()]
        meta = {k: record[k] for k in ("type", "evidences") if k in record}
        examples.append(Example(ex_id, question, [answer], docs, "2wiki", meta))
    return examples


def read_corpus(path: str | Path) -> list[Document]:
    """Passages of a jsonl corpus: ``{"id"?, "title", "text"}`` per line.

    A missing ``id`` becomes ``"c<line>"``; ids must be unique; ``title`` may be empty but must
    be a string.

    Raises:
        FileNotFoundError: The file does not exist.
        DataError: A line is not JSON, or a field is missing or of the wrong type.
    """
    docs: list[Document] = []
    seen: dict[str, str] = {}
    for loc, record in iter_jsonl(path):
        text = require(record, "text", str, path, loc)
        title = require(record, "title", str, path, loc)
        ident = record.get("id", "c" + loc.split()[-1])
        if not isinstance(ident, str | int) or isinstance(ident, bool):
            raise DataError(path, loc, "id", f"expected a string, got {type(ident).__name__}")
        if str(ident) in seen:
            raise DataError(path, loc, "id", f"duplicate id {ident!r} (also {seen[str(ident)]})")
        seen[str(ident)] = loc
        docs.append(Document(id=str(ident), title=title, text=text))
    return docs


def corpus_from_examples(examples: list[Example], words: int = 100) -> list[Document]:
    """Every document of the examples split into ``words``-word passages, unique by text.

    Passage ``k`` of a document titled ``t`` gets the id ``"t#k"`` (``"p<n>#k"`` untitled;
    a prime is appended when the id is taken by another text of the same title).
    """
    seen: set[str] = set()
    ids: set[str] = set()
    corpus: list[Document] = []
    for example in examples:
        for doc in example.documents:
            for k, text in enumerate(split_passages(doc.text, words)):
                if text in seen:
                    continue
                seen.add(text)
                ident = f"{doc.title or f'p{len(corpus)}'}#{k}"
                while ident in ids:  # the same title with another text elsewhere
                    ident += "'"
                ids.add(ident)
                corpus.append(Document(id=ident, title=doc.title, text=text))
    return corpus
