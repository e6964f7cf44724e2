"""Rebuild the prompts of recorded predictions, and locate each ``[DOC i]`` in their tokens.

Predictions store the ordered ``doc_ids`` of their context, not the prompt text. Documents are
resolved from the examples (an example's own ids, or ``"<example id>/<doc id>"`` for documents
of the shared distractor pool) and rendered again with the task's prompt. Where possible the
context is rebuilt exactly as ``longctx eval`` built it (:func:`context_documents`), with the
run's configuration (:func:`load_run_source`) or a fresh evaluation (:func:`predict_examples`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from longctx.data.context import render_documents
from longctx.data.example import Document, Example


def document_char_spans(
    text: str, n_docs: int, context_start: int = 0, context_end: int | None = None
) -> list[tuple[int, int]]:
    """Character spans ``[start, end)`` of ``[DOC 1]`` ... ``[DOC n]`` in a rendered prompt.

    Documents are rendered as ``[DOC i] (Title: t) text`` separated by blank lines; a span runs
    from its tag to the blank line before the next tag. The last one ends at ``context_end`` when
    given, else at the next blank line (or the end of the text).

    Raises:
        ValueError: A tag is not found in order.
    """
    starts: list[int] = []
    pos = context_start
    for i in range(1, n_docs + 1):
        tag = f"[DOC {i}]"
        if i == 1:
            at = text.find(tag, pos)
        else:
            at = text.find("\n\n" + tag, pos)
            at = at + 2 if at >= 0 else at
        if at < 0:
            raise ValueError(f"{tag} not found in the prompt after character {pos}")
        starts.append(at)
        pos = at + len(tag)
    spans = [(s, max(s, nxt - 2)) for s, nxt in zip(starts, starts[1:], strict=False)]
    if starts:
        end = context_end
        if end is None:
            blank = text.find("\n\n", starts[-1])
            end = blank if blank >= 0 else len(text)
        spans.append((starts[-1], end))
    return spans


def default_add_special_tokens(tokenizer: Any) -> bool:
    """What :class:`~longctx.models.generate.LocalEngine` does: chat templates hold the BOS."""
    return not getattr(tokenizer, "chat_template", None)


def encode_with_spans(
    tokenizer: Any,
    prompt_text: str,
    n_docs: int,
    context_start: int = 0,
    context_end: int | None = None,
    add_special_tokens: bool | None = None,
) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of a prompt and the token span ``[start, end)`` of each document.

    A token belongs to a document when its characters overlap the document's; a token straddling
    a boundary goes to the later document (it holds that document's tag), so spans never overlap.

    Args:
        tokenizer: A fast tokenizer (``return_offsets_mapping`` is needed).
        prompt_text: The full rendered prompt.
        n_docs: Number of ``[DOC i]`` documents in it.
        context_start: Character where the context starts (tags are searched from there).
        context_end: Character where the context ends (end of the last document).
        add_special_tokens: Default: as the evaluation engine encodes prompts.

    Raises:
        ValueError: The tokenizer is not a fast one, or a tag is missing.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("document spans need a fast tokenizer (offsets mapping)")
    if add_special_tokens is None:
        add_special_tokens = default_add_special_tokens(tokenizer)
    chars = document_char_spans(prompt_text, n_docs, context_start, context_end)
    enc = tokenizer(prompt_text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    offsets = [(int(a), int(b)) for a, b in enc["offset_mapping"]]
    spans: list[tuple[int, int]] = []
    for cs, ce in chars:
        inside = [t for t, (a, b) in enumerate(offsets) if b > a and b > cs and a < ce]
        spans.append((inside[0], inside[-1] + 1) if inside else (0, 0))
    for i in range(len(spans) - 1):  # a boundary token belongs to the later document
        start, end = spans[i]
        spans[i] = (start, min(end, spans[i + 1][0]))
    return list(enc["input_ids"]), spans


def document_spans(
    tokenizer: Any, prompt_text: str, n_docs: int, context_end: int | None = None
) -> list[tuple[int, int]]:
    """Token spans ``[start_tok, end_tok)`` of each ``[DOC i]`` in the tokenised prompt.

    Token positions refer to the prompt encoded as the evaluation engine does (special tokens
    added only without a chat template); see :func:`encode_with_spans` for the ids too.

    Args:
        tokenizer: A fast tokenizer.
        prompt_text: The rendered prompt.
        n_docs: Number of documents.
        context_end: Character where the last document ends (default: the next blank line).
    """
    return encode_with_spans(tokenizer, prompt_text, n_docs, context_end=context_end)[1]


@dataclass
class RebuiltPrompt:
    """A prediction's prompt rebuilt from its example and recorded document order."""

    ids: list[int]
    spans: list[tuple[int, int]]
    documents: list[Document]
    text: str


class DocumentResolver:
    """Finds documents by the ids predictions record (own ids, or pool ``example/doc`` ids)."""

    def __init__(self, examples: Sequence[Example]):
        self.examples = {ex.id: ex for ex in examples}
        self.pool = {f"{ex.id}/{d.id}": d for ex in examples for d in ex.documents}

    def resolve(self, example: Example, doc_ids: Sequence[str]) -> list[Document]:
        """The documents of ``doc_ids`` in order.

        Raises:
            KeyError: An id is neither the example's nor in the pool.
        """
        own = {d.id: d for d in example.documents}
        docs = []
        for doc_id in doc_ids:
            doc = own.get(doc_id) or self.pool.get(doc_id)
            if doc is None:
                raise KeyError(f"document {doc_id!r} of {example.id} not found in the examples")
            docs.append(doc)
        return docs


def rebuild_prompt(
    task: Any, tokenizer: Any, example: Example, docs: Sequence[Document]
) -> RebuiltPrompt:
    """Render the task prompt over ``docs`` and locate every document's tokens."""
    prompt = task.prompt(tokenizer, example, render_documents(docs))
    start = len(prompt.before)
    ids, spans = encode_with_spans(
        tokenizer, prompt.text, len(docs), start, start + len(prompt.context)
    )
    return RebuiltPrompt(ids, spans, list(docs), prompt.text)


def context_builder(loaded: Any, config: Any, task: Any, examples: Sequence[Example]) -> Any:
    """The evaluation's context builder (same seed, pool and budgets as ``longctx eval``)."""
    from longctx.eval.runner import Evaluator, distractor_pool
    from longctx.models.generate import LocalEngine

    pool = distractor_pool(examples) if task.context == "passages" else []
    return Evaluator(config, task, LocalEngine(loaded), loaded.window, pool)


def load_run_source(folder: Path, loaded: Any) -> tuple[Any, Any, list[Example], list[dict], dict]:
    """Task, context builder, examples, predictions and config of a run folder."""
    from longctx.eval.config import EvalConfig
    from longctx.eval.runner import load_examples
    from longctx.eval.tasks import get_task
    from longctx.report.runs import read_predictions

    for name in ("config.yaml", "predictions.jsonl"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder}: missing {name} (not a run folder?)")
    cfg = yaml.safe_load((folder / "config.yaml").read_text()) or {}
    fields = {k: v for k, v in cfg.items() if k in EvalConfig.model_fields}
    config = EvalConfig.model_validate(fields)
    task = get_task(config.task)
    try:
        examples = load_examples(config, task)
    except (OSError, ValueError) as err:
        raise FileNotFoundError(
            f"{folder}: cannot reload the examples of task {config.task} (data={config.data!r}) "
            f"to rebuild the prompts: {err}"
        ) from err
    evaluator = context_builder(loaded, config, task, examples)
    return task, evaluator, examples, read_predictions(folder / "predictions.jsonl"), cfg


def predict_examples(
    loaded: Any, examples: Sequence[Example], task_name: str | None, length: int
) -> tuple[Any, Any, list[dict[str, Any]]]:
    """Evaluate examples in full mode at ``length``: task, context builder, prediction records."""
    from longctx.eval.config import EvalConfig
    from longctx.eval.runner import Job
    from longctx.eval.tasks import get_task

    task = get_task(task_name or examples[0].task or "synthetic")
    config = EvalConfig(task=task.name, lengths=[length], modes=["full"])
    evaluator = context_builder(loaded, config, task, examples)
    return task, evaluator, [evaluator.predict(Job(ex, "full", length)) for ex in examples]


def context_documents(
    evaluator: Any, resolver: DocumentResolver, ex: Example, record: dict[str, Any]
) -> tuple[list[Any], bool]:
    """The documents of a prediction's context and whether they are exactly the evaluated ones.

    The context is built again as the evaluation built it; when its document order differs from
    the recorded ``doc_ids`` (another tokenizer, changed data), the recorded ids are resolved
    instead (a distractor cut to fill the budget then comes back whole).
    """
    from longctx.eval.runner import Job

    try:
        job = Job(ex, record["mode"], int(record["length"]), record.get("setting", ""))
        built = evaluator.context_for(job)
        if built.doc_ids == list(record["doc_ids"]):
            return built.documents, True
    except ValueError:
        pass
    return resolver.resolve(ex, record["doc_ids"]), False
