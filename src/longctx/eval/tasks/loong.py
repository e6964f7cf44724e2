"""Loong (Wang et al., 2024, "Leave No Document Behind: Benchmarking Long-Context LLMs with
Extended Multi-Doc QA"), the English financial split: questions over several 10-K reports.

The prompt follows each question's own ``prompt_template`` (``{docs}``, ``{instruction}``,
``{question}``): the reports, each under its title, then the instruction and the question.
Upstream shuffles the reports when ``shuffle_doc`` is set; here the shuffle is seeded by the
example id, so a rerun sees the same order.

Loong is graded by an LLM judge (0-100 for accuracy, hallucination and completeness; a "perfect"
answer scores 100). A judge is not pure, so the task splits scoring in two:

- :meth:`LoongTask.score` gives a cheap local proxy, token F1 against the serialised answer.
- :meth:`LoongTask.judge_score` asks a :class:`~longctx.eval.judge.Judge` with
  :data:`~longctx.eval.judge.LOONG_JUDGE_PROMPT` and returns ``judge`` (0-100), ``perfect``
  (1.0 when the score is 100), ``judge_raw`` and ``judge_error``; an unreadable verdict is kept
  as ``judge=None`` with its raw text, never guessed. The runner calls it when
  ``task.needs_judge`` is true and merges the dict into the record's scores.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any, ClassVar

from longctx.data.context import BuiltContext
from longctx.data.example import Document, Example
from longctx.eval.judge import LOONG_JUDGE_PROMPT, Judge, parse_score_0_100
from longctx.eval.prompts import Prompt
from longctx.eval.scoring import token_f1
from longctx.eval.tasks.base import Task, register_task
from longctx.eval.tasks.mc_common import CONTEXT_MARK, chat_prompt

DEFAULT_TEMPLATE = "{docs}\n\n{instruction}\n\n{question}"
ANSWER_PREFIX = ""


def render_titled(docs: Sequence[Document]) -> str:
    """Each document under a numbered title line, separated by blank lines."""
    parts = [
        f"### Document {i}: {d.title or d.id}\n\n{d.text.strip()}" for i, d in enumerate(docs, 1)
    ]
    return "\n\n".join(parts)


def seeded_order(example: Example) -> list[Document]:
    """The documents, shuffled with a seed from the example id when ``meta["shuffle_doc"]``."""
    docs = list(example.documents)
    if example.meta.get("shuffle_doc"):
        seed = int.from_bytes(hashlib.sha256(example.id.encode()).digest()[:8], "big")
        random.Random(seed).shuffle(docs)
    return docs


def _fill(template: str, **fields: str) -> str:
    """Replace ``{name}`` placeholders literally (the template may hold other braces)."""
    for name, value in fields.items():
        template = template.replace("{" + name + "}", value)
    return template


@dataclass(frozen=True)
class LoongTask(Task):
    """Loong financial QA: local F1 proxy in :meth:`score`, the LLM judge in :meth:`judge_score`."""

    needs_judge: ClassVar[bool] = True

    def document_context(self, example: Example, mode: str) -> BuiltContext:
        """Every report (seeded shuffle), each under its title; nothing in ``none`` mode."""
        docs = [] if mode == "none" else seeded_order(example)
        positions = [i for i, d in enumerate(docs, start=1) if d.is_gold]
        return BuiltContext(docs, render_titled(docs), positions, None)

    def prompt(self, tokenizer: Any, example: Example, context: str) -> Prompt:
        """``prompt_template`` with the reports, the instruction and the question."""
        template = str(example.meta.get("prompt_template") or DEFAULT_TEMPLATE)
        if "{docs}" not in template:
            template = DEFAULT_TEMPLATE
        instruction = str(example.meta.get("instruction") or "").strip()
        question = example.question.strip()
        if context:
            user = _fill(template, docs=CONTEXT_MARK, instruction=instruction, question=question)
        else:
            user = "\n\n".join(p for p in (instruction, question) if p)
        return chat_prompt(tokenizer, user.strip(), context, ANSWER_PREFIX)

    def extract(self, output: str, example: Example) -> str:
        """The whole answer (it may be a sentence, a list or a JSON-like dict)."""
        return output.strip()

    def score(self, prediction: str, example: Example) -> dict[str, float]:
        """``f1``: token F1 against the serialised gold answer (a proxy for the judge)."""
        return {"f1": token_f1(prediction, example.answers)}

    def judge_prompt(self, prediction: str, example: Example) -> str:
        """The grading prompt for one prediction."""
        return LOONG_JUDGE_PROMPT.format(
            question=example.question.strip(),
            gold=example.answers[0] if example.answers else "",
            prediction=prediction.strip() or "(no answer)",
        )

    def judge_score(self, prediction: str, example: Example, judge: Judge) -> dict[str, Any]:
        """Grade one prediction with an LLM judge.

        Returns:
            ``judge`` (the 0-100 verdict stored as a fraction 0..1 like every other score, so
            tables show it on the 0-100 scale; ``None`` when the call failed or the verdict is
            unreadable),
            ``perfect`` (1.0 for 100, 0.0 below, ``None`` without a score), ``judge_raw`` (the
            judge's text or ``None``) and ``judge_error`` (why there is no score, else ``None``).
        """
        result = judge.grade(self.judge_prompt(prediction, example), parse_score_0_100)
        score = result.parsed
        error = result.error
        if score is None and error is None:
            error = "unparsed judge answer"
        return {
            "judge": None if score is None else score / 100.0,
            "perfect": None if score is None else float(score == 100.0),
            "judge_raw": result.raw,
            "judge_error": error,
        }

    def summarize(self, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Mean judge score over the parsed verdicts, perfect rate, unparsed/failed counts, and
        the mean judge score by level; ``{}`` when no record was judged."""
        judged = [r for r in records if "judge_raw" in r["scores"] or "judge" in r["scores"]]
        if not judged:
            return {}
        scores = [r["scores"]["judge"] for r in judged if _number(r["scores"].get("judge"))]
        failed = sum(1 for r in judged if r["scores"].get("judge_raw") is None)
        out: dict[str, Any] = {
            "judge_mean": fmean(scores) if scores else None,
            "perfect_rate": sum(s == 1.0 for s in scores) / len(scores) if scores else None,
            "judged": len(scores),
            "judge_unparsed": len(judged) - len(scores) - failed,
            "judge_failed": failed,
        }
        levels: dict[int, list[float]] = {}
        for r in judged:
            level, score = (r.get("meta") or {}).get("level"), r["scores"].get("judge")
            if isinstance(level, int) and _number(score):
                levels.setdefault(level, []).append(score)
        for level in sorted(levels):
            out[f"judge_level{level}"] = fmean(levels[level])
        return out


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


LOONG_FIN = register_task(
    LoongTask(
        name="loong_fin",
        reader="loong",
        metric="judge",
        max_new_tokens=256,
        domain="out",
        context="document",
        description="Loong financial multi-document QA (10-K reports), LLM judge 0-100 + F1 proxy",
    )
)
