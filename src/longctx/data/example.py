"""The typed example every reader produces and every later stage consumes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Document:
    """One passage or document an example can put in the model's context.

    Attributes:
        id: Identifier unique within the example (e.g. the HotpotQA title, or ``"ctx3"``).
        title: Display title; empty when the source has none.
        text: The passage text.
        is_gold: Whether the document supports the answer (gold / supporting fact).
    """

    id: str
    title: str
    text: str
    is_gold: bool = False


@dataclass
class Example:
    """One question with its answers and candidate documents.

    Attributes:
        id: Identifier unique within the task.
        question: The question (for multiple choice, the stem; options live in ``meta``).
        answers: Every acceptable gold answer; scorers take the best match over them.
        documents: Candidate context documents, gold and distractors, in source order.
        task: Name of the task or source this example belongs to (e.g. ``"hotpotqa"``).
        meta: Source-specific extras (type, level, options, difficulty, ...), JSON-serialisable.
    """

    id: str
    question: str
    answers: list[str]
    documents: list[Document] = field(default_factory=list)
    task: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def gold_documents(self) -> list[Document]:
        """The documents marked gold, in source order."""
        return [d for d in self.documents if d.is_gold]

    @property
    def distractors(self) -> list[Document]:
        """The documents not marked gold, in source order."""
        return [d for d in self.documents if not d.is_gold]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (the inverse of :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Example:
        """Build an example from :meth:`to_dict` output."""
        docs = [Document(**d) for d in record.get("documents", [])]
        return cls(
            id=str(record["id"]),
            question=record["question"],
            answers=list(record["answers"]),
            documents=docs,
            task=record.get("task", ""),
            meta=dict(record.get("meta", {})),
        )
