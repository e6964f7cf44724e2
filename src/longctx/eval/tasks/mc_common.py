"""Helpers shared by the out-of-domain document tasks: prompts, options, letters, ROUGE.

Used by the InfiniteBench (Zhang et al., 2024), LongBench v2 (Bai et al., 2024), Loong (Wang et
al., 2024) and L-Eval (An et al., 2023) task modules. Prompts are one user turn of the chat
template with the context first and the question after it, and the assistant turn pre-filled
with an answer prefix; the context is kept apart (:class:`~longctx.eval.prompts.Prompt`) so the
runner can cut it in the middle.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from statistics import fmean
from typing import Any, Literal

from longctx.data.context import BuiltContext
from longctx.data.example import Example
from longctx.eval.mc import extract_choice
from longctx.eval.prompts import Prompt
from longctx.eval.tasks.base import Task

CONTEXT_MARK = "\x00CONTEXT\x00"


def chat_prompt(tokenizer: Any, user: str, context: str, answer_prefix: str) -> Prompt:
    """Render one user turn (holding :data:`CONTEXT_MARK` once when ``context`` is given).

    Args:
        tokenizer: Tokenizer; its chat template is used when it has one.
        user: The user message; the mark stands where the context goes.
        context: The rendered documents (empty for no-context prompts).
        answer_prefix: Text the assistant's answer starts with (pre-filled).
    """
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
        )
        text += answer_prefix
    else:
        text = f"{user}\n\n{answer_prefix}"
    if not context:
        return Prompt(text.replace(CONTEXT_MARK, ""), "", "")
    before, after = text.split(CONTEXT_MARK)
    return Prompt(before, context, after)


def render_prompt(
    tokenizer: Any,
    context: str,
    with_context: str,
    without_context: str,
    answer_prefix: str,
    **fields: str,
) -> Prompt:
    """Fill a task's template (``{context}`` plus ``fields``) and render it as a chat turn."""
    if context:
        user = with_context.format(context=CONTEXT_MARK, **fields)
    else:
        user = without_context.format(**fields)
    return chat_prompt(tokenizer, user, context, answer_prefix)


def format_options(options: Mapping[str, str], style: str = "({letter}) {text}") -> str:
    """One line per option, e.g. ``(A) Paris``."""
    return "\n".join(style.format(letter=k, text=v.strip()) for k, v in options.items())


def extract_letter(output: str, options: Mapping[str, str], prefix: str = "") -> str | None:
    """The chosen option letter, reading the pre-filled ``prefix`` and the output together
    (``"The correct answer is ("`` + ``"B) ..."``), then the output alone; ``None`` if unparsed."""
    if not output or not output.strip():
        return None
    if prefix:
        choice = extract_choice(prefix + output, options)
        if choice is not None:
            return choice
    return extract_choice(output, options)


_LEAD = re.compile(r"\b(?:correct\s+)?(?:answers?|options?|choices?)\s*(?:is|are|:)\s*:?", re.I)
_ITEM = r"[\(\[]?\**[A-Z]{1,8}\**[\)\]]?(?![A-Za-z])"
_LIST = re.compile(rf"\s*({_ITEM}(?:\s*(?:,|;|/|&|\band\b|\s)\s*{_ITEM})*)")


def extract_letters(output: str, options: Mapping[str, str], prefix: str = "") -> str | None:
    """Several option letters (``"ABD"``, ``"A, C and D"``, ``"(A) and (C)"``), sorted and joined;
    one letter through :func:`extract_letter`; ``None`` when unparsed."""
    if not output or not output.strip():
        return None
    text = prefix + output
    leads = list(_LEAD.finditer(text))
    start = leads[-1].end() if leads else len(prefix)
    match = _LIST.match(text, start)
    if match is None and leads:
        match = _LIST.match(text, len(prefix))
    keys = {k.upper() for k in options}
    block = match.group(1) if match else ""
    letters = sorted(set(re.findall(r"[A-Z]", block)))
    if len(letters) >= 2 and set(letters) <= keys:
        return "".join(letters)
    return extract_letter(output, options, prefix)


def same_letters(pred: str | None, gold: str) -> float:
    """1.0 when the predicted letters equal the gold letters as sets (unparsed scores 0)."""
    if not pred:
        return 0.0
    return float(set(pred.upper()) == set(gold.strip().upper()))


def mc_summary(
    records: Sequence[Mapping[str, Any]], by: Mapping[str, Sequence[str]] | None = None
) -> dict[str, Any]:
    """Unparsed answers (empty ``answer``) and accuracy by meta field values.

    Args:
        records: Prediction records with ``answer``, ``scores["accuracy"]`` and ``meta``.
        by: Meta field -> values to report in order (others present are added after them);
            each value ``v`` gives ``accuracy_<v>`` and ``n_<v>``.
    """
    n = len(records)
    unparsed = sum(1 for r in records if not r.get("answer"))
    correct = sum(float(r["scores"].get("accuracy", 0.0)) for r in records)
    parsed = n - unparsed
    out: dict[str, Any] = {
        "unparsed": unparsed,
        "unparsed_rate": unparsed / n if n else 0.0,
        "accuracy_parsed": correct / parsed if parsed else 0.0,
    }
    for field, order in (by or {}).items():
        groups: dict[str, list[float]] = defaultdict(list)
        for r in records:
            value = (r.get("meta") or {}).get(field)
            if value is not None:
                groups[str(value)].append(float(r["scores"].get("accuracy", 0.0)))
        for value in [*order, *sorted(set(groups) - set(order))]:
            if groups.get(value):
                out[f"accuracy_{value}"] = fmean(groups[value])
                out[f"n_{value}"] = len(groups[value])
    return out


@cache
def _rouge_scorer(kind: str) -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer([kind], use_stemmer=True)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _sentences(text: str) -> str:
    """One sentence per line, the input rougeLsum expects."""
    return "\n".join(s for s in _SENTENCE_END.split(text.strip()) if s)


def rouge(prediction: str, answers: Sequence[str], kind: str = "rougeL") -> float:
    """Best ROUGE F-measure (``rougeL`` or ``rougeLsum``, stemmed) over the gold answers."""
    scorer = _rouge_scorer(kind)
    prep = _sentences if kind == "rougeLsum" else str.strip
    pred = prep(prediction)
    if not pred:
        return 0.0
    return max((scorer.score(prep(a), pred)[kind].fmeasure for a in answers), default=0.0)


def task_file(path: str | Path | None, stem: str, what: str) -> Path:
    """``path`` when it is a file, else ``path/<stem>.jsonl`` (or ``.jsonl.gz``) in a folder."""
    if path is None:
        raise ValueError(f"{what} needs --data (its {stem}.jsonl, or the folder holding it)")
    path = Path(path)
    if not path.is_dir():
        return path
    for name in (f"{stem}.jsonl", f"{stem}.jsonl.gz"):
        if (path / name).is_file():
            return path / name
    raise FileNotFoundError(f"{what}: no {stem}.jsonl in folder {path}")


@dataclass(frozen=True)
class DocTask(Task):
    """A long-document task: the document(s) shown as plain text, without ``[DOC i]`` tags.

    Out of domain and ``document``-style by default.

    Attributes:
        file_stem: The task's file in a benchmark folder (``load`` also takes the file itself);
            empty: the reader gets the path as given.
    """

    file_stem: str = ""
    domain: Literal["in", "out", "builtin"] = "out"
    context: Literal["passages", "document"] = "document"

    def load(self, path: str | Path | None, **options: Any) -> list[Example]:
        if not self.file_stem:
            return super().load(path, **options)
        return super().load(task_file(path, self.file_stem, self.name), **options)

    def document_context(self, example: Example, mode: str) -> BuiltContext:
        """Every document's text, separated by blank lines (nothing in ``none`` mode)."""
        docs = [] if mode == "none" else list(example.documents)
        text = "\n\n".join(d.text.strip() for d in docs)
        positions = [i for i, d in enumerate(docs, start=1) if d.is_gold]
        return BuiltContext(docs, text, positions, None)


@dataclass(frozen=True)
class ChoiceTask(DocTask):
    """Multiple choice with options in ``meta["options"]`` and accuracy of the chosen letter(s).

    The prompt fills ``self.template`` with ``{context}``, ``{question}`` and ``{options}`` (one
    ``(A) text`` line each); its ``answer_prefix`` is pre-filled and read back with the output.
    The gold is ``meta["gold"]`` when set, else ``answers[0]`` (letters, compared as sets).

    Attributes:
        multi: Several letters may be correct (read with :func:`extract_letters`).
        groups: Meta fields (and their values, in order) to report accuracy by.
    """

    multi: bool = False
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def options(self, example: Example) -> dict[str, str]:
        """The example's options, ``{"A": ..., "D": ...}``."""
        options = example.meta.get("options")
        if not isinstance(options, dict) or not options:
            raise ValueError(f"{example.id}: multiple-choice example without meta['options']")
        return options

    def gold(self, example: Example) -> str:
        """The gold letter(s)."""
        return str(example.meta.get("gold") or example.answers[0])

    def prompt(self, tokenizer: Any, example: Example, context: str) -> Prompt:
        t = self.template
        return render_prompt(
            tokenizer,
            context,
            t.with_context,
            t.without_context,
            t.answer_prefix,
            question=example.question.strip(),
            options=format_options(self.options(example)),
        )

    def _letters(self, output: str, example: Example, prefix: str) -> str | None:
        read = extract_letters if self.multi else extract_letter
        return read(output, self.options(example), prefix)

    def extract(self, output: str, example: Example) -> str:
        """The chosen letter(s), or ``""`` when the output names none."""
        return self._letters(output, example, self.template.answer_prefix) or ""

    def score(self, prediction: str, example: Example) -> dict[str, float]:
        """``accuracy``: 1.0 when the letters are the gold ones (a raw answer is parsed first)."""
        options = {k.upper() for k in self.options(example)}
        pred = prediction.strip().upper()
        if not pred or not set(pred) <= options or (len(pred) > 1 and not self.multi):
            pred = self._letters(prediction, example, "") or ""
        return {"accuracy": same_letters(pred, self.gold(example))}

    def summarize(self, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Unparsed count/rate, accuracy over parsed answers, and accuracy by ``groups``."""
        return mc_summary(records, dict(self.groups))


@dataclass(frozen=True)
class TextTask(DocTask):
    """A free-form task: ``self.template`` with ``{context}`` and ``{question}``."""

    def prompt(self, tokenizer: Any, example: Example, context: str) -> Prompt:
        t = self.template
        question = example.question.strip() or "(not given)"
        return render_prompt(
            tokenizer,
            context,
            t.with_context,
            t.without_context,
            t.answer_prefix,
            question=question,
        )
