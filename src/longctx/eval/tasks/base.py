"""The task interface and registry: one module per benchmark, registered by exact name.

A task knows how to load its examples (``load``), render a prompt with the question after the
context (``prompt``), how many tokens to generate (``max_new_tokens``), how to pull the answer out
of the output (``extract``) and how to score it (``score``, pure). ``summarize`` adds task-specific
aggregates (accuracy by difficulty, unparsed rate, ...) to a group of prediction records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from longctx.data.context import BuiltContext, render_documents
from longctx.data.example import Example
from longctx.eval.prompts import QA_TEMPLATE, Prompt, QATemplate, extract_answer, render_qa_prompt
from longctx.eval.scoring import score_qa

TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Register a task instance under its exact name."""
    if task.name in TASKS:
        raise ValueError(f"task {task.name!r} registered twice")
    TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The registered task called ``name`` (a clear error lists the known ones)."""
    from longctx.eval import tasks as _  # noqa: F401  (registers every task module)

    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]


@dataclass(frozen=True)
class Task:
    """A benchmark: data reader, prompt, generation limit, answer extraction and scorer.

    Attributes:
        name: Registry name (``longctx eval NAME``).
        reader: Reader format used by :meth:`load` (see ``longctx.data.readers``).
        metric: The primary metric key of :meth:`score` (shown first in tables).
        max_new_tokens: Generation limit.
        domain: ``"in"`` (in-domain RAG-style QA), ``"out"`` (out-of-domain long documents) or
            ``"builtin"`` (synthetic data).
        context: ``"passages"`` (many passages tagged ``[DOC i]``, filled to each length) or
            ``"document"`` (the example's documents whole, middle-truncated to the max length).
        description: One line for ``longctx tasks``.
        template: Prompt template.
    """

    name: str
    reader: str
    metric: str = "subem"
    max_new_tokens: int = 20
    domain: Literal["in", "out", "builtin"] = "in"
    context: Literal["passages", "document"] = "passages"
    description: str = ""
    template: QATemplate = QA_TEMPLATE

    def load(self, path: str | Path | None, **options: Any) -> list[Example]:
        """Read the task's examples from ``path`` with its reader."""
        from longctx.data.readers import read_examples

        if path is None:
            raise ValueError(f"task {self.name!r} needs --data (a file or folder)")
        examples = read_examples(self.reader, path, **options)
        for ex in examples:
            ex.task = self.name
        return examples

    def document_context(self, example: Example, mode: str) -> BuiltContext:
        """Context of a ``document`` task: every document, in order (none in ``none`` mode)."""
        docs = [] if mode == "none" else list(example.documents)
        if mode == "gold":
            docs = [d for d in docs if d.is_gold] or docs
        positions = [i for i, d in enumerate(docs, start=1) if d.is_gold]
        return BuiltContext(docs, render_documents(docs), positions, None)

    def prompt(self, tokenizer: Any, example: Example, context: str) -> Prompt:
        """Render the prompt (question after the context)."""
        return render_qa_prompt(tokenizer, example.question, context, self.template)

    def extract(self, output: str, example: Example) -> str:
        """The answer in the model's output."""
        return extract_answer(output)

    def score(self, prediction: str, example: Example) -> dict[str, float]:
        """Scores of one extracted prediction (pure)."""
        return score_qa(prediction, example.answers)

    def summarize(self, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Extra aggregates of a group of prediction records (default: none)."""
        return {}


TaskFactory = Callable[..., Task]
