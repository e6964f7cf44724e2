"""The evaluation loop: contexts, prompts, greedy generation, scores, resumable predictions.

A run folder holds ``config.yaml`` (what was asked), ``predictions.jsonl`` (one record per
prediction, appended as soon as it is made) and ``metrics.json`` (written at the end). Rerunning
into the same folder skips the predictions already there.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from longctx.config import dump_config
from longctx.data.context import TokenCounter, build_context, truncate_middle
from longctx.data.example import Document, Example
from longctx.eval.config import IDENTITY_FIELDS, EvalConfig
from longctx.eval.metrics import aggregate
from longctx.eval.prompts import extract_answer, render_qa_prompt
from longctx.eval.scoring import score_qa
from longctx.models.generate import LocalEngine
from longctx.models.loader import LoadedModel
from longctx.utils.jsonl import JsonlAppender, read_jsonl_tolerant

logger = logging.getLogger(__name__)


class Reporter(Protocol):
    """Receives progress from :func:`run_eval` (the CLI shows it as a progress bar)."""

    def start(self, total: int, done: int) -> None: ...

    def update(self, record: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Job:
    """One prediction to make: an example in a mode at a length (0 for gold/none modes)."""

    example: Example
    mode: str
    length: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.example.id, self.mode, self.length)


def load_examples(config: EvalConfig) -> list[Example]:
    """All examples of the configured data (before ``limit``), or built-in synthetic ones."""
    from longctx.data.readers import read_examples

    if config.data is None:
        if config.task != "synthetic":
            raise ValueError(f"task {config.task!r} needs --data (only 'synthetic' is built in)")
        from longctx.data.synthetic import generate_synthetic

        return generate_synthetic(n=config.synthetic_n, seed=config.seed)
    return read_examples(config.format or config.task, config.data)


def distractor_pool(examples: Iterable[Example]) -> list[Document]:
    """Every document of every example, as a distractor with an id unique across examples."""
    return [
        Document(f"{ex.id}/{d.id}", d.title, d.text, False) for ex in examples for d in ex.documents
    ]


def plan_jobs(examples: Iterable[Example], config: EvalConfig) -> list[Job]:
    """Every (example, mode, length) prediction of the run, grouped by mode and length."""
    jobs = []
    for mode in config.modes:
        lengths = sorted(set(config.lengths)) if mode == "full" else [0]
        for length in lengths:
            jobs.extend(Job(ex, mode, length) for ex in examples)
    return jobs


def check_run_folder(out: Path, config: EvalConfig) -> None:
    """Refuse to mix predictions of a different model, task, data or decoding into one folder."""
    path = out / "config.yaml"
    if not path.exists():
        return
    old = yaml.safe_load(path.read_text()) or {}
    new = config.model_dump(mode="json")
    diff = [f for f in IDENTITY_FIELDS if f in old and old[f] != new[f]]
    if diff:
        details = ", ".join(f"{f}: {old[f]!r} -> {new[f]!r}" for f in diff)
        raise ValueError(
            f"{out} holds a run with a different configuration ({details}); "
            "use another --out folder"
        )


class Evaluator:
    """Makes predictions for jobs with one loaded model."""

    def __init__(self, config: EvalConfig, loaded: LoadedModel, pool: list[Document]):
        self.config = config
        self.engine = LocalEngine(loaded)
        self.counter = TokenCounter(loaded.tokenizer)
        self.pool = pool
        self.max_prompt = loaded.window - config.max_new_tokens

    def predict(self, job: Job) -> dict[str, Any]:
        """Build the prompt of one job, generate greedily, and score the answer."""
        ex, cfg, tok = job.example, self.config, self.engine.tokenizer
        shell = render_qa_prompt(tok, ex.question, "[DOC 1]")
        overhead = self.counter.count(shell.before + shell.after, cache=False) + 2
        budget = job.length - overhead if job.mode == "full" else None
        if budget is not None and budget <= 0:
            raise ValueError(
                f"length {job.length} is too short for the prompt itself ({overhead} tokens)"
            )
        for _ in range(3):
            built = build_context(
                ex, job.mode, self.counter, budget, cfg.depth, cfg.seed, self.pool
            )
            prompt = render_qa_prompt(tok, ex.question, built.text)
            ids = self.engine.encode(prompt.text)
            if budget is None or len(ids) <= job.length:
                break
            budget -= len(ids) - job.length  # tokens merge differently at the joins
        truncated = 0
        if len(ids) > self.max_prompt:
            ids, truncated = self._truncate(prompt.before, prompt.context, prompt.after)
            logger.warning(
                "%s: prompt of %d tokens exceeds the window; cut %d context tokens from the middle",
                ex.id,
                len(ids) + truncated,
                truncated,
            )
        gen = self.engine.generate_ids(ids, cfg.max_new_tokens)
        answer = extract_answer(gen.text)
        return {
            "id": ex.id,
            "task": cfg.task,
            "mode": job.mode,
            "length": job.length,
            "prompt_tokens": gen.prompt_tokens,
            "truncated_tokens": truncated,
            "depth": built.depth,
            "gold_positions": built.gold_positions,
            "doc_ids": built.doc_ids,
            "output": gen.text,
            "answer": answer,
            "answers": ex.answers,
            "scores": score_qa(answer, ex.answers),
            "seconds": round(gen.seconds, 3),
        }

    def _truncate(self, before: str, context: str, after: str) -> tuple[list[int], int]:
        head = self.engine.encode(before)
        tail = self.engine.tokenizer.encode(after, add_special_tokens=False)
        ctx = self.engine.tokenizer.encode(context, add_special_tokens=False)
        keep = max(self.max_prompt - len(head) - len(tail), 0)
        return head + truncate_middle(ctx, keep) + tail, len(ctx) - keep


def run_eval(
    config: EvalConfig,
    loaded: LoadedModel | None = None,
    reporter: Reporter | None = None,
    on_status=None,
) -> dict[str, Any]:
    """Run (or resume) an evaluation and return its metrics.

    Args:
        config: What to evaluate; ``config.out`` is the run folder.
        loaded: A model already in memory (default: load ``config.model``).
        reporter: Progress receiver.
        on_status: Receives one-line status messages (model conversion, resume counts).

    Returns:
        The metrics dict also written to ``out/metrics.json``.
    """
    out = Path(config.out)
    check_run_folder(out, config)
    out.mkdir(parents=True, exist_ok=True)
    dump_config(config, out / "config.yaml")
    examples = load_examples(config)
    pool = distractor_pool(examples)
    selected = examples[: config.limit] if config.limit is not None else examples
    jobs = plan_jobs(selected, config)
    pred_path = out / "predictions.jsonl"
    existing = read_jsonl_tolerant(pred_path)
    done = {(r["id"], r["mode"], int(r["length"])) for r in existing}
    todo = [j for j in jobs if j.key not in done]
    if on_status and done:
        on_status(
            f"resuming: {len(jobs) - len(todo)} of {len(jobs)} predictions already in {pred_path}"
        )
    if reporter:
        reporter.start(len(jobs), len(jobs) - len(todo))
    if todo:
        loaded = loaded or _load(config.model, on_status)
        evaluator = Evaluator(config, loaded, pool)
        with JsonlAppender(pred_path) as sink:
            for job in todo:
                record = evaluator.predict(job)
                sink.write(record)
                if reporter:
                    reporter.update(record)
    wanted = {j.key for j in jobs}
    records = [
        r
        for r in read_jsonl_tolerant(pred_path)
        if (r["id"], r["mode"], int(r["length"])) in wanted
    ]
    metrics = aggregate(records, task=config.task, model=config.model)
    metrics["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    dump_config(config, out / "config.yaml")
    return metrics


def _load(spec: str, on_status) -> LoadedModel:
    from longctx.models.loader import load_model

    return load_model(spec, on_status=on_status)
