"""In-domain document QA tasks in the HELMET RAG style (Yen et al., 2024), scored by SubEM.

Each example comes with its passages (gold + distractors); ``longctx eval`` fills the context to
each requested length with distractors and records the gold depth of every prediction. Reference
rows: ``--mode gold`` (gold passages only) and ``--mode none`` (no context).

HELMET fixes the number of passages per input length; :data:`HELMET_PASSAGES` gives those counts
and :func:`helmet_passages` interpolates for other lengths (``--fill helmet``). By default longctx
fills to the token budget instead (``--fill tokens``), which is exact for any tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from longctx.data.example import Example
from longctx.eval.tasks.base import Task, register_task

# Passages per input length in HELMET's RAG tasks (NQ, TriviaQA, PopQA, HotpotQA).
HELMET_PASSAGES = {8192: 50, 16384: 105, 32768: 220, 65536: 440, 131072: 1000}


def helmet_passages(length: int) -> int:
    """Number of passages HELMET puts in a context of ``length`` tokens (interpolated)."""
    if length in HELMET_PASSAGES:
        return HELMET_PASSAGES[length]
    return max(2, round(length / 8192 * HELMET_PASSAGES[8192]))


@dataclass(frozen=True)
class SyntheticTask(Task):
    """The built-in data: generated when no file is given, else read from its jsonl."""

    def load(
        self, path: str | Path | None, n: int = 50, seed: int = 0, **options: Any
    ) -> list[Example]:
        if path is not None:
            return super().load(path, **options)
        from longctx.data.synthetic import generate_synthetic

        return generate_synthetic(n=n, seed=seed)


SYNTHETIC = register_task(
    SyntheticTask(
        name="synthetic",
        reader="synthetic",
        domain="builtin",
        description="built-in multi-document QA about fictional entities (1- and 2-hop)",
    )
)
HOTPOTQA = register_task(
    Task(
        name="hotpotqa",
        reader="hotpotqa",
        description="HotpotQA multi-hop QA (official distractor format), SubEM",
    )
)
NQ = register_task(
    Task(name="nq", reader="nq", description="Natural Questions open (ctxs with isgold), SubEM")
)
TRIVIAQA = register_task(
    Task(
        name="triviaqa",
        reader="kilt",
        description="TriviaQA from HELMET/KILT-style jsonl (question, answers, ctxs), SubEM",
    )
)
POPQA = register_task(
    Task(
        name="popqa",
        reader="kilt",
        description="PopQA from HELMET/KILT-style jsonl (question, answers, ctxs), SubEM",
    )
)
KILT = register_task(
    Task(
        name="kilt",
        reader="kilt",
        description="any HELMET/KILT-style jsonl (question, answers, ctxs[{title, text}]), SubEM",
    )
)
