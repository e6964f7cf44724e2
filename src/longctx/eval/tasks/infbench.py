"""InfiniteBench (Zhang et al., 2024, "∞Bench: Extending Long Context Evaluation Beyond 100K
Tokens"): the English novel tasks, each over one whole (entity-replaced) book.

- ``infbench_mc`` (En.MC, ``longbook_choice_eng.jsonl``): four options, accuracy of the letter.
- ``infbench_qa`` (En.QA, ``longbook_qa_eng.jsonl``): short free-form answers, token F1 (the
  paper's metric) and SubEM.
- ``infbench_sum`` (En.Sum, ``longbook_sum_eng.jsonl``): a summary of the book, ROUGE-Lsum F1
  (stemmed, one sentence per line). InfiniteBench and HELMET allow 1,200 new tokens for it, and
  so does this task (lower it with ``--max-new-tokens`` for quick runs).

``load`` takes the task's jsonl file, or a folder holding the InfiniteBench files (it then reads
its own file). Generation limits follow InfiniteBench: 40 new tokens for MC and QA.
"""

from __future__ import annotations

from dataclasses import dataclass

from longctx.data.example import Example
from longctx.eval.prompts import QATemplate, extract_answer
from longctx.eval.scoring import substring_exact_match, token_f1
from longctx.eval.tasks.base import register_task
from longctx.eval.tasks.mc_common import ChoiceTask, TextTask, rouge

_ONE_LETTER = "Only one option is correct. Answer with its letter (A, B, C or D) only."
MC_TEMPLATE = QATemplate(
    with_context=(
        "Read the book below; a multiple-choice question about it follows.\n\n"
        "{context}\n\n"
        "Question: {question}\n\n"
        "Options:\n{options}\n\n" + _ONE_LETTER
    ),
    without_context=(
        "Answer the multiple-choice question about a book.\n\n"
        "Question: {question}\n\n"
        "Options:\n{options}\n\n" + _ONE_LETTER
    ),
    answer_prefix="The answer is (",
)
QA_TEMPLATE = QATemplate(
    with_context=(
        "Read the book below and answer the question that follows it.\n\n"
        "{context}\n\n"
        "Question: {question}\n\n"
        "Be concise: answer with a few words only."
    ),
    without_context=(
        "Answer the question about a book.\n\n"
        "Question: {question}\n\n"
        "Be concise: answer with a few words only."
    ),
    answer_prefix="Answer:",
)
SUM_TEMPLATE = QATemplate(
    with_context=(
        "Below is a book; you will be asked to summarize it.\n\n"
        "{context}\n\n"
        "Now write a summary of the book in about 1,000 words. Cover its plot and its main "
        "characters; do not add analysis or commentary."
    ),
    without_context="Write a summary of about 1,000 words of this book: {question}",
    answer_prefix="Summary:",
)


@dataclass(frozen=True)
class InfBenchQATask(TextTask):
    """En.QA: token F1 and SubEM of the answer's first line."""

    def extract(self, output: str, example: Example) -> str:
        return extract_answer(output)

    def score(self, prediction: str, example: Example) -> dict[str, float]:
        return {
            "f1": token_f1(prediction, example.answers),
            "subem": substring_exact_match(prediction, example.answers),
        }


@dataclass(frozen=True)
class InfBenchSumTask(TextTask):
    """En.Sum: ROUGE-Lsum F-measure of the whole generated summary."""

    def extract(self, output: str, example: Example) -> str:
        return output.strip()

    def score(self, prediction: str, example: Example) -> dict[str, float]:
        return {"rougeLsum": rouge(prediction, example.answers, "rougeLsum")}


INFBENCH_MC = register_task(
    ChoiceTask(
        name="infbench_mc",
        reader="infbench",
        file_stem="longbook_choice_eng",
        metric="accuracy",
        max_new_tokens=40,
        description="InfiniteBench En.MC: multiple choice (A-D) over a whole novel, accuracy",
        template=MC_TEMPLATE,
    )
)
INFBENCH_QA = register_task(
    InfBenchQATask(
        name="infbench_qa",
        reader="infbench",
        file_stem="longbook_qa_eng",
        metric="f1",
        max_new_tokens=40,
        description="InfiniteBench En.QA: free-form questions over a whole novel, F1 and SubEM",
        template=QA_TEMPLATE,
    )
)
INFBENCH_SUM = register_task(
    InfBenchSumTask(
        name="infbench_sum",
        reader="infbench",
        file_stem="longbook_sum_eng",
        metric="rougeLsum",
        max_new_tokens=1200,
        description="InfiniteBench En.Sum: summary of a whole novel, ROUGE-Lsum",
        template=SUM_TEMPLATE,
    )
)
