"""One flat index of every group score of every run, keyed the way report tables ask for them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Any

from longctx.report.runs import Run, parse_setting

IN_DOMAINS = ("in", "builtin")


@dataclass(frozen=True)
class Entry:
    """The primary score of one group of one run.

    Attributes:
        task: Task name.
        label: Model or variant label.
        domain: ``in``, ``out`` or ``builtin``.
        metric: Name of the primary score.
        mode: Group mode (``full``, ``rag``, ``gold``, ``none``).
        length: Context length (RAG: token budget; 0 where none applies).
        setting: The raw setting string.
        context: ``full`` (uncompressed), ``compressed``, ``rag``, ``gold``, ``none`` or ``other``.
        method: Compression method, retriever name, or the raw setting for ``other``.
        ratio: Compression ratio (0.0 when uncompressed).
        score: Mean primary score (0..1), ``None`` when the group lacks it.
        n: Number of predictions in the group.
        kv_kept: Mean fraction of KV-cache bytes kept (compression runs that record it).
        folder: The run folder.
    """

    task: str
    label: str
    domain: str
    metric: str
    mode: str
    length: int
    setting: str
    context: str
    method: str
    ratio: float
    score: float | None
    n: int
    kv_kept: float | None
    folder: Path


@dataclass
class ScoreIndex:
    """Every entry, the task and label order of the report, and remarks made while indexing."""

    entries: list[Entry] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    domain: dict[str, str] = field(default_factory=dict)
    metric: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def select(self, **where: Any) -> list[Entry]:
        """Entries whose attributes equal every keyword (``select(task="nq", context="rag")``)."""
        return [e for e in self.entries if all(getattr(e, k) == v for k, v in where.items())]

    def score(self, **where: Any) -> float | None:
        """The score of the one entry matching ``where`` (``None`` when there is none)."""
        found = self.select(**where)
        return found[0].score if found else None

    def lengths(self, **where: Any) -> list[int]:
        """Sorted distinct lengths of the entries matching ``where``."""
        return sorted({e.length for e in self.select(**where)})

    def tasks_in(self, domains: Sequence[str]) -> list[str]:
        return [t for t in self.tasks if self.domain[t] in domains]

    def mean_score(self, lengths: Sequence[int] | None = None, **where: Any) -> float | None:
        """Unweighted mean score over the matching entries (optionally only at ``lengths``)."""
        values = [
            e.score
            for e in self.select(**where)
            if e.score is not None and (lengths is None or e.length in lengths)
        ]
        return fmean(values) if values else None


def _kv_fractions(run: Run) -> dict[tuple[str, int, str], float]:
    """Mean ``kv_bytes_kept / kv_bytes_full`` per group of a run's predictions."""
    acc: dict[tuple[str, int, str], list[float]] = defaultdict(list)
    for p in run.predictions:
        c = p.get("compress")
        if not isinstance(c, dict) or not c.get("kv_bytes_full"):
            continue
        key = (p.get("mode", ""), int(p.get("length", 0)), p.get("setting", ""))
        acc[key].append(float(c.get("kv_bytes_kept", 0)) / float(c["kv_bytes_full"]))
    return {k: fmean(v) for k, v in acc.items()}


def _compress_fields(run: Run) -> dict[tuple[str, int, str], dict[str, Any]]:
    out: dict[tuple[str, int, str], dict[str, Any]] = {}
    for p in run.predictions:
        if isinstance(p.get("compress"), dict):
            key = (p.get("mode", ""), int(p.get("length", 0)), p.get("setting", ""))
            out.setdefault(key, p["compress"])
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def build_index(runs: Sequence[Run]) -> ScoreIndex:
    """Index the groups of every run.

    A group seen twice (same task, label, mode, length and parsed setting, e.g. the uncompressed
    ``""`` and ``"none@0"``) keeps the score of the first run given (with a note when the
    scores differ).
    """
    index = ScoreIndex()
    seen: dict[tuple[str, str, str, int, str, str, float], tuple[Path, float | None]] = {}
    for run in runs:
        task, label = run.task, run.label
        if task not in index.domain:
            index.tasks.append(task)
            index.domain[task] = run.domain
            index.metric[task] = run.metric
        elif index.metric[task] != run.metric:
            index.notes.append(
                f"{run.folder}: task {task} scored by {run.metric}, other runs by "
                f"{index.metric[task]}; each cell uses its own run's metric"
            )
        if label not in index.labels:
            index.labels.append(label)
        kv = _kv_fractions(run)
        compress = _compress_fields(run)
        for group in run.groups:
            mode, length = str(group["mode"]), int(group["length"])
            setting = str(group.get("setting") or "")
            parsed = parse_setting(mode, setting, compress.get((mode, length, setting)))
            key = (task, label, mode, length, parsed.context, parsed.method, parsed.ratio)
            score = _number(group.get(run.metric))
            if key in seen:
                first, first_score = seen[key]
                if first_score != score:
                    index.notes.append(
                        f"{run.folder}: {task} / {label} / {mode} {length} {setting!r} is also "
                        f"in {first} with another score; the one from {first} is shown"
                    )
                continue
            seen[key] = (run.folder, score)
            index.entries.append(
                Entry(
                    task=task,
                    label=label,
                    domain=run.domain,
                    metric=run.metric,
                    mode=mode,
                    length=length,
                    setting=setting,
                    context=parsed.context,
                    method=parsed.method,
                    ratio=parsed.ratio,
                    score=score,
                    n=int(group.get("n") or 0),
                    kv_kept=kv.get((mode, length, setting)),
                    folder=run.folder,
                )
            )
    return index
