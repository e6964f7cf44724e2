"""L-Eval (An et al., 2023, "L-Eval: Instituting Standardized Evaluation for Long Context
Language Models"): one task per file, each question asked after its long document.

Closed-ended (exam) tasks, scored by exact match of the chosen option letter(s):

- ``leval_coursera``: course transcripts; one *or several* options may be correct, and the
  predicted letters must equal the gold letters as a set.
- ``leval_quality``: stories (QuALITY); the gold is written as ``"(B) <option text>"``.
- ``leval_tpo``: TOEFL lecture transcripts.

The options are written inside each instruction (``A. ...`` or ``(A) ...`` lines); ``load``
parses them into ``meta["options"]`` and the gold letter(s) into ``meta["gold"]``.

Open-ended tasks:

- ``leval_legal_contract_qa``: quote the contract clauses a question asks about; token F1
  (L-Eval's metric) and ROUGE-L.
- ``leval_scientific_qa``: questions about NLP papers; token F1 and ROUGE-L.
- ``leval_topic_retrieval_longchat``: name the first/second/third topic of a long chat record;
  SubEM (the gold topic occurs in the answer) and exact match.

``load`` takes the task's jsonl file, or the L-Eval folder (it then reads its own file).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from longctx.data.example import Example
from longctx.eval.mc import extract_choice
from longctx.eval.prompts import QATemplate, extract_answer
from longctx.eval.scoring import exact_match, substring_exact_match, token_f1
from longctx.eval.tasks.base import register_task
from longctx.eval.tasks.mc_common import ChoiceTask, TextTask, rouge

_OPTION_LINE = re.compile(r"^[ \t]*\(?([A-Z])[.)][ \t]+(\S.*?)[ \t]*$", re.MULTILINE)
_GOLD_LETTERS = re.compile(r"\s*\(?([A-Z]{1,8})\)?(?=[\s.:,)]|$)")


def parse_options(instruction: str) -> dict[str, str]:
    """The last run of option lines ``A. ...``, ``B. ...`` (or ``(A) ...``) in an instruction."""
    options: dict[str, str] = {}
    for match in _OPTION_LINE.finditer(instruction):
        letter, text = match.group(1), match.group(2)
        if letter == "A":
            options = {"A": text}
        elif options and ord(letter) == ord(max(options)) + 1:
            options[letter] = text
    return options


def parse_gold(output: str, options: dict[str, str]) -> str:
    """The gold letters of an L-Eval output (``"C"``, ``"ABD"``, ``"(B) text"``), sorted; an
    option's text alone is matched to its letter; ``""`` when neither works."""
    match = _GOLD_LETTERS.match(output)
    if match and set(match.group(1)) <= set(options):
        return "".join(sorted(set(match.group(1))))
    return extract_choice(output, options) or ""


@dataclass(frozen=True)
class LEvalChoiceTask(ChoiceTask):
    """An L-Eval exam task: options and gold letters parsed from the file at load time."""

    def load(self, path: str | Path | None, **options: Any) -> list[Example]:
        examples = super().load(path, **options)
        for ex in examples:
            opts = parse_options(ex.question) or {k: "" for k in "ABCD"}
            ex.meta["options"] = opts
            ex.meta["gold"] = parse_gold(ex.answers[0], opts)
        return examples


@dataclass(frozen=True)
class LEvalQATask(TextTask):
    """An open L-Eval task: token F1 and ROUGE-L (``first_line``: score the first line only)."""

    first_line: bool = True

    def extract(self, output: str, example: Example) -> str:
        return extract_answer(output) if self.first_line else output.strip()

    def score(self, prediction: str, example: Example) -> dict[str, float]:
        return {
            "f1": token_f1(prediction, example.answers),
            "rougeL": rouge(prediction, example.answers, "rougeL"),
        }


@dataclass(frozen=True)
class LEvalTopicTask(TextTask):
    """Topic retrieval: SubEM and exact match of the answer's first line."""

    def extract(self, output: str, example: Example) -> str:
        return extract_answer(output)

    def score(self, prediction: str, example: Example) -> dict[str, float]:
        return {
            "subem": substring_exact_match(prediction, example.answers),
            "em": exact_match(prediction, example.answers),
        }


def _template(intro: str, label: str, ask: str, reply: str) -> QATemplate:
    """Intro, the labelled document, then the instruction (after ``ask``, when given)."""
    ask = f"{ask}: " if ask else ""
    return QATemplate(
        with_context=f"{intro}\n\n{label}:\n{{context}}\n\n{ask}{{question}}\n\n{reply}",
        without_context=f"{ask}{{question}}\n\n{reply}",
        answer_prefix="Answer:",
    )


_ONE = "Exactly one option is correct. Give only the letter of that option, without explanation."
_SEVERAL = (
    "One or several options may be correct. Give the letters of all correct options together "
    "(for example B, or ACD), without explanation."
)
_COMMON = {"reader": "leval"}
LEVAL_TASKS = [
    LEvalChoiceTask(
        name="leval_coursera",
        file_stem="coursera",
        multi=True,
        metric="accuracy",
        max_new_tokens=16,
        description="L-Eval Coursera: lecture transcripts, one or more correct options, accuracy",
        template=_template(
            "You are given a course transcript and then a multiple-choice question about it.",
            "Transcript",
            "",
            _SEVERAL,
        ),
        **_COMMON,
    ),
    LEvalChoiceTask(
        name="leval_quality",
        file_stem="quality",
        metric="accuracy",
        max_new_tokens=16,
        description="L-Eval QuALITY: multiple choice about a story, accuracy",
        template=_template(
            "You are given a story and then a multiple-choice question about it.",
            "Story",
            "Question",
            _ONE,
        ),
        **_COMMON,
    ),
    LEvalChoiceTask(
        name="leval_tpo",
        file_stem="tpo",
        metric="accuracy",
        max_new_tokens=16,
        description="L-Eval TPO: multiple choice about TOEFL lectures, accuracy",
        template=_template(
            "You are given a lecture transcript and then a multiple-choice question about it.",
            "Transcript",
            "Question",
            _ONE,
        ),
        **_COMMON,
    ),
    LEvalQATask(
        name="leval_legal_contract_qa",
        file_stem="legal_contract_qa",
        first_line=False,
        metric="f1",
        max_new_tokens=256,
        description="L-Eval legal contract QA: quote the relevant clauses, F1 and ROUGE-L",
        template=_template(
            "You are given a contract and then an instruction about it.",
            "Contract",
            "Instruction",
            "Answer by quoting the relevant parts of the contract, without comments.",
        ),
        **_COMMON,
    ),
    LEvalQATask(
        name="leval_scientific_qa",
        file_stem="scientific_qa",
        metric="f1",
        max_new_tokens=64,
        description="L-Eval scientific QA: questions about NLP papers, F1 and ROUGE-L",
        template=_template(
            "You are given a scientific paper and then a question about it.",
            "Paper",
            "Question",
            'Answer concisely, in one line; answer yes/no questions with "Yes" or "No".',
        ),
        **_COMMON,
    ),
    LEvalTopicTask(
        name="leval_topic_retrieval_longchat",
        file_stem="topic_retrieval_longchat",
        metric="subem",
        max_new_tokens=32,
        description="L-Eval topic retrieval (LongChat): name the n-th topic of a chat, SubEM",
        template=_template(
            "Below is the record of a long conversation between a USER and an ASSISTANT that "
            "went through several topics, one after another. Each topic starts with the USER "
            'saying "I would like to discuss the topic of <TOPIC>".',
            "Record",
            "Question",
            "Give only the topic name, as the USER stated it.",
        ),
        **_COMMON,
    ),
]
for _task in LEVAL_TASKS:
    register_task(_task)
