"""The evaluation loop: contexts, prompts, greedy generation, scores, resumable predictions.

A run folder holds ``config.yaml`` (what was asked), ``predictions.jsonl`` (one record per
prediction, appended as soon as it is made) and ``metrics.json`` (written at the end). Rerunning
into the same folder skips the predictions already there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import yaml

from longctx.config import dump_config
from longctx.data.context import BuiltContext, TokenCounter, build_context, truncate_middle
from longctx.data.example import Document, Example
from longctx.eval.config import IDENTITY_FIELDS, EvalConfig
from longctx.eval.metrics import aggregate, record_key
from longctx.eval.shard import select_shard
from longctx.eval.tasks import Task, get_task
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
    """One prediction to make.

    Attributes:
        example: The example.
        mode: ``full``, ``gold``, ``none`` (or ``rag``).
        length: Prompt length in tokens for ``full``/``rag`` passage contexts, the truncation
            length of ``document`` tasks, 0 where no length applies.
        setting: Further variant label (retriever, compression method@ratio); ``""`` for none.
    """

    example: Example
    mode: str
    length: int
    setting: str = ""

    @property
    def key(self) -> tuple[str, str, int, str]:
        return (self.example.id, self.mode, self.length, self.setting)

    @property
    def compressed(self) -> bool:
        """Whether the job runs on a compressed KV cache (setting ``method@ratio``)."""
        return self.mode == "full" and bool(self.setting)


@dataclass
class Prepared:
    """A job's prompt as token ids: the context part (pre-filled, compressible) and the rest."""

    job: Job
    built: BuiltContext
    context_ids: list[int]
    question_ids: list[int]
    truncated: int


def load_examples(config: EvalConfig, task: Task) -> list[Example]:
    """All examples of the configured data (before ``limit``)."""
    options: dict[str, Any] = {}
    if task.name == "synthetic" and config.data is None:
        options = {"n": config.synthetic_n, "seed": config.seed}
    if config.format:
        from longctx.data.readers import read_examples

        examples = read_examples(config.format, config.data)
        for ex in examples:
            ex.task = task.name
        return examples
    return task.load(config.data, **options)


def distractor_pool(examples: Iterable[Example]) -> list[Document]:
    """Every document of every example, as a distractor with an id unique across examples."""
    return [
        Document(f"{ex.id}/{d.id}", d.title, d.text, False) for ex in examples for d in ex.documents
    ]


def plan_jobs(examples: Iterable[Example], config: EvalConfig, task: Task) -> list[Job]:
    """Every prediction of the run, grouped by mode and length."""
    examples = list(examples)
    jobs = []
    for mode in config.modes:
        if task.context == "document":
            lengths = [config.max_length or 0] if mode != "none" else [0]
        else:
            lengths = sorted(set(config.lengths)) if mode == "full" else [0]
        settings = compression_settings(config) if mode == "full" else [""]
        if mode == "rag":
            lengths = sorted(set(config.budgets or config.lengths))
            settings = list(config.retrievers)
        for length in lengths:
            for setting in settings:
                jobs.extend(Job(ex, mode, length, setting) for ex in examples)
    return jobs


def compression_settings(config: EvalConfig) -> list[str]:
    """``method@ratio`` labels of the run's compression sweep (``[""]`` without one)."""
    if not config.compress:
        return [""]
    ratios = sorted(set(config.ratios))
    return [f"{m}@{r:g}" for m in config.compress for r in ([0.0] if m == "none" else ratios)]


def parse_setting(setting: str) -> tuple[str, float]:
    """``"snapkv@0.5"`` -> ``("snapkv", 0.5)``."""
    method, _, ratio = setting.partition("@")
    return method, float(ratio or 0)


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

    def __init__(
        self,
        config: EvalConfig,
        task: Task,
        engine: Any,
        window: int,
        pool: list[Document],
        judge: Any = None,
    ):
        self.config = config
        self.judge = judge
        self.task = task
        self.engine = engine
        self.counter = TokenCounter(engine.tokenizer)
        self.pool = pool
        self.window = window
        self.max_new_tokens = config.max_new_tokens or task.max_new_tokens

    def context_for(self, job: Job) -> BuiltContext:
        """The documents of one job's prompt, filled to its length for passage tasks."""
        ex, cfg = job.example, self.config
        if job.mode == "rag":
            return self.fit(job, lambda budget: self.rag_context(job, budget))
        if self.task.context == "document":
            return self.task.document_context(ex, job.mode)
        if job.mode != "full":
            return build_context(ex, job.mode, depth=cfg.depth, seed=cfg.seed)
        return self.fit(job, lambda budget: self.full_context(ex, budget, job.length))

    def full_context(self, ex: Example, budget: int, length: int) -> BuiltContext:
        cfg = self.config
        return build_context(
            ex, "full", self.counter, budget, cfg.depth, cfg.seed, self.pool, self.max_docs(length)
        )

    def rag_context(self, job: Job, budget: int) -> BuiltContext:
        """Rank the documents the long-context model would read (at the largest length) or the
        chunks of a long document, and keep the best ones within ``budget`` tokens."""
        from longctx.retrieval.rag import build_rag_context

        ex, cfg = job.example, self.config
        chunk = None
        if self.task.context == "document":
            candidates, chunk = ex, cfg.chunk_tokens
        else:
            longest = max(cfg.lengths)
            docs = self.full_context(ex, self.context_budget(ex, longest), longest).documents
            candidates = replace(ex, documents=docs)
        key = hashlib.sha1(f"{ex.id}:{chunk}".encode()).hexdigest()[:16]
        index_dir = Path(cfg.out) / "indexes" / job.setting / key
        return build_rag_context(
            candidates, job.setting, budget, self.counter, chunk, index_dir=index_dir
        )

    def context_budget(self, ex: Example, length: int) -> int:
        """Tokens left for the context in a prompt of ``length`` tokens."""
        shell = self.task.prompt(self.engine.tokenizer, ex, "[DOC 1]")
        overhead = self.counter.count(shell.before + shell.after, cache=False) + 2
        if length - overhead <= 0:
            raise ValueError(
                f"length {length} is too short for the prompt itself ({overhead} tokens)"
            )
        return length - overhead

    def fit(self, job: Job, build) -> BuiltContext:
        """Build a context whose whole prompt stays within the job's length."""
        ex, tok = job.example, self.engine.tokenizer
        budget = self.context_budget(ex, job.length)
        for _ in range(3):
            built = build(budget)
            n = self.counter.count(self.task.prompt(tok, ex, built.text).text, cache=False)
            if n <= job.length:
                break
            budget -= n - job.length  # tokens merge differently at the joins
        return built

    def max_docs(self, length: int) -> int | None:
        """HELMET's passage count for a length with ``fill=helmet``, else no limit."""
        from longctx.eval.tasks.qa import helmet_passages

        return helmet_passages(length) if self.config.fill == "helmet" else None

    def max_prompt(self, job: Job) -> int:
        """Largest prompt this job may have: the window (and max length) minus generation."""
        cap = self.window
        if self.config.max_length:
            cap = min(cap, self.config.max_length)
        return cap - self.max_new_tokens

    def prepare(self, job: Job) -> Prepared:
        """Build one job's context and prompt, and cut it to the limit (middle of the context)."""
        ex = job.example
        built = self.context_for(job)
        prompt = self.task.prompt(self.engine.tokenizer, ex, built.text)
        head = self.engine.encode(prompt.before + prompt.context)
        tail = self.engine.tokenizer.encode(prompt.after, add_special_tokens=False)
        truncated = 0
        limit = self.max_prompt(job)
        if len(head) + len(tail) > limit:
            head, truncated = self._truncate(prompt.before, prompt.context, limit - len(tail))
            logger.warning(
                "%s: prompt of %d tokens exceeds the limit of %d; cut %d context tokens from the "
                "middle",
                ex.id,
                len(head) + len(tail) + truncated,
                limit,
                truncated,
            )
        return Prepared(job, built, head, tail, truncated)

    def predict(self, job: Job) -> dict[str, Any]:
        """Build the prompt of one job, generate greedily, and score the answer."""
        prep = self.prepare(job)
        gen = self.engine.generate_ids(prep.context_ids + prep.question_ids, self.max_new_tokens)
        return self.record(prep, gen)

    def predict_compressed(self, jobs: list[Job]) -> list[dict[str, Any]]:
        """Predictions of jobs sharing one compression setting; one pre-fill per shared context.

        The context part of each prompt (everything up to the question) is pre-filled once with
        the method active and compressed; the question and answer are decoded on that cache.
        """
        from longctx.compress import generate_many, make_method

        method_name, ratio = parse_setting(jobs[0].setting)
        method = make_method(method_name, ratio=ratio, query_aware=self.config.query_aware)
        prepared = [self.prepare(job) for job in jobs]
        groups: dict[tuple[int, ...], list[Prepared]] = {}
        for prep in prepared:
            groups.setdefault(tuple(prep.context_ids), []).append(prep)
        results: dict[int, dict[str, Any]] = {}
        for context_ids, preps in groups.items():
            gens = generate_many(
                self.engine.loaded,
                list(context_ids),
                [p.question_ids for p in preps],
                method,
                self.max_new_tokens,
            )
            for prep, gen in zip(preps, gens, strict=True):
                record = self.record(prep, gen)
                record["compress"] = {
                    "method": method_name,
                    "ratio": ratio,
                    "query_aware": self.config.query_aware,
                    "kv_bytes_kept": gen.kv_bytes_kept,
                    "kv_bytes_full": gen.kv_bytes_full,
                    "kv_bytes_attended": gen.kv_bytes_attended,
                    "kept_per_layer": gen.kept_per_layer,
                    "prefill_seconds": round(gen.prefill_seconds, 3),
                }
                results[id(prep)] = record
        return [results[id(p)] for p in prepared]

    def record(self, prep: Prepared, gen: Any) -> dict[str, Any]:
        """The prediction record of one generation."""
        job, built, ex = prep.job, prep.built, prep.job.example
        answer = self.task.extract(gen.text, ex)
        scores = self.task.score(answer, ex)
        if self.judge is not None:
            scores.update(self.task.judge_score(answer, ex, self.judge))
        return {
            "id": ex.id,
            "task": self.config.task,
            "mode": job.mode,
            "length": job.length,
            "setting": job.setting,
            "prompt_tokens": gen.prompt_tokens,
            "truncated_tokens": prep.truncated,
            "depth": built.depth,
            "gold_positions": built.gold_positions,
            "doc_ids": built.doc_ids,
            "retrieved_ids": getattr(built, "retrieved_ids", None),
            "output": gen.text,
            "answer": answer,
            "answers": ex.answers,
            "scores": scores,
            "meta": _small_meta(ex),
            "seconds": round(gen.seconds, 3),
        }

    def _truncate(self, before: str, context: str, limit: int) -> tuple[list[int], int]:
        head = self.engine.encode(before)
        ctx = self.engine.tokenizer.encode(context, add_special_tokens=False)
        keep = max(limit - len(head), 0)
        return head + truncate_middle(ctx, keep), len(ctx) - keep


def _small_meta(ex: Example) -> dict[str, Any]:
    """The scalar fields of an example's meta (difficulty, level, hops, ...) for grouping."""
    return {k: v for k, v in ex.meta.items() if isinstance(v, str | int | float | bool)}


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
    task = get_task(config.task)
    out = Path(config.out)
    check_run_folder(out, config)
    out.mkdir(parents=True, exist_ok=True)
    dump_config(config, out / "config.yaml")
    examples = load_examples(config, task)
    selected = examples[: config.limit] if config.limit is not None else examples
    selected = select_shard(selected, config.shard)
    jobs = plan_jobs(selected, config, task)
    pred_path = out / "predictions.jsonl"
    done = {record_key(r) for r in read_jsonl_tolerant(pred_path)}
    todo = [j for j in jobs if j.key not in done]
    if on_status and done:
        on_status(
            f"resuming: {len(jobs) - len(todo)} of {len(jobs)} predictions already in {pred_path}"
        )
    if reporter:
        reporter.start(len(jobs), len(jobs) - len(todo))
    if todo:
        pool = distractor_pool(examples) if task.context == "passages" else []
        if config.engine == "openai":
            engine, window = _openai_engine(config, on_status), config.max_length or 10**9
        else:
            loaded = loaded or _load(config.model, on_status)
            engine, window = LocalEngine(loaded), loaded.window
        judge = make_task_judge(config, task, loaded)
        evaluator = Evaluator(config, task, engine, window, pool, judge)
        if config.compress:
            from longctx.compress import check_supported

            for method in config.compress:  # fail before any work on unsupported models
                check_supported(loaded.model, method)
        with JsonlAppender(pred_path) as sink:
            for batch in _batches(todo):
                if batch[0].compressed:
                    records = evaluator.predict_compressed(batch)
                else:
                    records = [evaluator.predict(job) for job in batch]
                for record in records:
                    sink.write(record)
                    if reporter:
                        reporter.update(record)
    wanted = {j.key for j in jobs}
    records = [r for r in read_jsonl_tolerant(pred_path) if record_key(r) in wanted]
    metrics = aggregate(records, task=task, model=config.model)
    metrics["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    dump_config(config, out / "config.yaml")
    return metrics


def make_task_judge(config: EvalConfig, task: Task, loaded: LoadedModel) -> Any:
    """The LLM judge of a task that needs one (``None`` otherwise, or when none is configured)."""
    if not getattr(task, "needs_judge", False):
        return None
    if not (config.judge_url or config.judge_local):
        logger.warning(
            "task %s is scored by an LLM judge but none is configured (--judge-url/--judge-model "
            "or --judge-local): only its local proxy scores are computed",
            task.name,
        )
        return None
    from longctx.eval.judge import make_judge

    local = loaded if config.judge_local == "self" else config.judge_local
    if local is None and config.judge_local == "self":
        raise ValueError("--judge-local self needs the local engine")
    cache = Path(config.out) / "judge_cache"
    return make_judge(config.judge_url, config.judge_model, local_model=local, cache_dir=cache)


def _batches(jobs: list[Job], size: int = 16) -> list[list[Job]]:
    """Consecutive jobs of one setting, at most ``size`` at a time (one job when uncompressed).

    Compressed jobs are batched so that examples sharing a context share one pre-fill, while
    predictions are still written every few examples.
    """
    batches: list[list[Job]] = []
    for job in jobs:
        last = batches[-1] if batches else None
        same = last and last[0].compressed and last[0].setting == job.setting
        if job.compressed and same and len(last) < size:
            last.append(job)
        else:
            batches.append([job])
    return batches


def _openai_engine(config: EvalConfig, on_status) -> Any:
    """An engine posting to an OpenAI-compatible server (e.g. vLLM) with a local tokenizer."""
    from longctx.models.loader import load_tokenizer
    from longctx.models.openai_engine import OpenAIEngine

    if not config.base_url:
        raise ValueError("--engine openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
    if config.compress:
        raise ValueError("KV-cache compression needs the local engine (--engine local)")
    tokenizer = load_tokenizer(config.tokenizer or config.model, on_status)
    return OpenAIEngine(config.base_url, config.model, tokenizer=tokenizer)


def _load(spec: str, on_status) -> LoadedModel:
    from longctx.models.loader import load_model

    return load_model(spec, on_status=on_status)
