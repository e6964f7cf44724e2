"""Prompt templates for document QA, with the question after the context.

The question comes after the documents so that the context prefix can be cached (and, later,
compressed) separately from the question. With a chat model the prompt is one user turn, and the
assistant turn is pre-filled with an answer prefix (``"The answer is:"``) so that short answers
come first and are easy to extract.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class QATemplate:
    """A document-QA template.

    Attributes:
        with_context: User message when documents are given (``{context}``, ``{question}``).
        without_context: User message in no-context mode (``{question}``).
        answer_prefix: Text the assistant's answer starts with (pre-filled in the prompt).
    """

    with_context: str = (
        "Use the given documents to answer the question. Give only the answer, in a few words.\n\n"
        "{context}\n\nQuestion: {question}"
    )
    without_context: str = (
        "Answer the question. Give only the answer, in a few words.\n\nQuestion: {question}"
    )
    answer_prefix: str = "The answer is:"


QA_TEMPLATE = QATemplate()


@dataclass
class Prompt:
    """A rendered prompt, split so the context can be truncated without touching the rest.

    Attributes:
        before: Everything before the context (chat header and instruction).
        context: The rendered documents (may be empty).
        after: Everything after the context (question, chat footer, answer prefix).
    """

    before: str
    context: str
    after: str

    @property
    def text(self) -> str:
        return self.before + self.context + self.after


def render_qa_prompt(
    tokenizer: Any, question: str, context: str, template: QATemplate = QA_TEMPLATE
) -> Prompt:
    """Render a QA prompt, through the tokenizer's chat template when it has one."""
    marker = "\x00CONTEXT\x00"
    if context:
        user = template.with_context.format(context=marker, question=question.strip())
    else:
        user = template.without_context.format(question=question.strip())
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
        )
        text = text + template.answer_prefix
    else:
        text = f"{user}\n\n{template.answer_prefix}"
    if context:
        before, after = text.split(marker)
        return Prompt(before, context, after)
    return Prompt(text, "", "")


_ANSWER_LEAD = re.compile(r"^\s*(?:the\s+)?(?:final\s+)?answer\s*(?:is)?\s*[:\-]\s*", re.I)


def extract_answer(output: str) -> str:
    """The answer in a generated continuation: its first non-empty line, without a repeated
    ``"Answer:"`` lead or a trailing period."""
    for line in output.strip().splitlines():
        line = _ANSWER_LEAD.sub("", line.strip()).strip()
        if line:
            return line.rstrip(".").strip()
    return ""
