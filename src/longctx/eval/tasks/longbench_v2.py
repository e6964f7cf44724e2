"""LongBench v2 (Bai et al., 2024, "LongBench v2: Towards Deeper Understanding and Reasoning on
Realistic Long-context Multitasks"): four-option multiple choice over one long context.

The prompt shows the whole context, then the question and its four options, and asks for the
reply "The correct answer is (X)"; that phrase is pre-filled up to the parenthesis, so the model
only has to add the letter. The letter is read with :func:`longctx.eval.mc.extract_choice`; an
unreadable answer counts as wrong and is reported (``unparsed``, ``unparsed_rate``). Accuracy is
also given by difficulty (``accuracy_easy``, ``accuracy_hard``) and by length
(``accuracy_short``, ``accuracy_medium``, ``accuracy_long``), as in the paper's tables, each
with its count (``n_easy``, ...).

LongBench v2 allows 128 new tokens without chain of thought; with the pre-filled answer phrase
32 are plenty.
"""

from __future__ import annotations

from longctx.eval.prompts import QATemplate
from longctx.eval.tasks.base import register_task
from longctx.eval.tasks.mc_common import ChoiceTask

_REPLY = (
    'Exactly one option is correct. Reply in the form "The correct answer is (X)", where X is '
    "the letter of that option."
)
LONGBENCH_V2_TEMPLATE = QATemplate(
    with_context=(
        "Read the text below carefully. A multiple-choice question about it follows.\n\n"
        "<text>\n{context}\n</text>\n\n"
        "Question: {question}\n\n"
        "Options:\n{options}\n\n" + _REPLY
    ),
    without_context=(
        "Answer the multiple-choice question below.\n\n"
        "Question: {question}\n\n"
        "Options:\n{options}\n\n" + _REPLY
    ),
    answer_prefix="The correct answer is (",
)
GROUPS = (("difficulty", ("easy", "hard")), ("length", ("short", "medium", "long")))

LONGBENCH_V2 = register_task(
    ChoiceTask(
        name="longbench_v2",
        reader="longbench_v2",
        metric="accuracy",
        max_new_tokens=32,
        description="LongBench v2 multiple choice (A-D) over one long context, accuracy",
        template=LONGBENCH_V2_TEMPLATE,
        groups=GROUPS,
    )
)
