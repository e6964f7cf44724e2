"""Build the report's tables from a :class:`~longctx.report.index.ScoreIndex`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean

from longctx.report.index import IN_DOMAINS, ScoreIndex
from longctx.report.runs import Bases, Run
from longctx.report.tables import Cell, Table, context_label, length_header, ratio_header


def runs_table(runs: Sequence[Run]) -> Table:
    """One row per run folder: what it evaluated."""
    table = Table(
        "runs",
        "Run folders",
        ["folder", "task", "model", "domain", "metric", "predictions", "base model"],
        ["text", "text", "text", "text", "text", "int", "text"],
    )
    for r in runs:
        n = r.metrics.get("n_predictions", len(r.predictions))
        table.rows.append(
            [str(r.folder), r.task, r.label, r.domain, r.metric, n, r.base_model or ""]
        )
    return table


def _metric_note(index: ScoreIndex, tasks: Sequence[str]) -> str:
    return "Primary metric: " + ", ".join(f"{t}: {index.metric[t]}" for t in tasks) + "."


def in_domain_summary(index: ScoreIndex) -> Table | None:
    """Task x model table of in-domain scores: full context averaged over lengths, plus
    gold-only and no-context rows per model (``None`` without in-domain runs)."""
    tasks = index.tasks_in(IN_DOMAINS)
    if not tasks:
        return None
    table = Table(
        "in_domain",
        "In-domain: primary metric (%), full context averaged over lengths",
        ["model", "context", *tasks, "mean"],
        ["text", "text", *["pct"] * len(tasks), "pct"],
    )
    contexts = [
        c for c in ("full", "gold", "none") if any(index.select(task=t, context=c) for t in tasks)
    ]
    partial = False
    for label in index.labels:
        if not any(index.select(task=t, label=label) for t in tasks):
            continue
        for ctx in contexts:
            row: list[Cell] = [label, context_label(ctx)]
            for j, task in enumerate(tasks, start=2):
                value = index.mean_score(task=task, label=label, context=ctx)
                if ctx == "full":
                    everyone = set(index.lengths(task=task, context="full"))
                    mine = set(index.lengths(task=task, label=label, context="full"))
                    if value is not None and mine < everyone:
                        table.marks[(len(table.rows), j)] = "*"
                        partial = True
                row.append(value)
            values = row[2:]
            row.append(fmean(values) if all(v is not None for v in values) else None)
            i = len(table.rows)
            if row[-1] is not None and any((i, j) in table.marks for j in range(len(row))):
                table.marks[(i, len(row) - 1)] = "*"
            table.rows.append(row)
    table.notes.append(_metric_note(index, tasks))
    builtin = [t for t in tasks if index.domain[t] == "builtin"]
    if builtin:
        table.notes.append(
            f"Built-in (synthetic) data listed with the in-domain tasks: {', '.join(builtin)}."
        )
    if partial:
        table.notes.append(
            "* averaged over fewer lengths than other models have for this task "
            "(see the per-length table)."
        )
    table.notes.append("The mean column is left empty when a task is missing for that row.")
    return table


def length_table(
    index: ScoreIndex,
    domains: Sequence[str],
    key: str,
    title: str,
    contexts: Sequence[str] = ("full", "rag", "other"),
) -> Table | None:
    """Rows (task, model, context), one column per length; RAG rows sit beside full context
    (their length is the retrieval budget). Every model gets a full-context row for each task
    that any model ran in full context, so missing runs show as missing."""
    tasks = index.tasks_in(domains)
    entries = [e for e in index.entries if e.task in tasks and e.context in contexts]
    if not entries:
        return None
    lengths = sorted({e.length for e in entries})
    table = Table(
        key,
        title,
        ["task", "model", "context", *[length_header(n) for n in lengths]],
        ["text", "text", "text", *["pct"] * len(lengths)],
    )
    order = {c: i for i, c in enumerate(contexts)}
    for task in tasks:
        kinds = sorted(
            {(e.context, e.method) for e in entries if e.task == task},
            key=lambda cm: (order[cm[0]], cm[1]),
        )
        for label in index.labels:
            for ctx, method in kinds:
                found = index.select(task=task, label=label, context=ctx, method=method)
                if not found and ctx != "full":
                    continue
                by_length = {e.length: e.score for e in found}
                row: list[Cell] = [task, label, context_label(ctx, method)]
                table.rows.append(row + [by_length.get(n) for n in lengths])
    table.notes.append(_metric_note(index, tasks))
    if "rag" in {e.context for e in entries}:
        table.notes.append("RAG rows: the column is the retrieval token budget.")
    return table


@dataclass(frozen=True)
class DropRow:
    """Scores of one (task, model, length, method) compression sweep."""

    task: str
    label: str
    length: int
    method: str
    reference: float | None
    scores: dict[float, float | None]

    def drop(self, ratio: float) -> float | None:
        """``(score - ref) / ref * 100`` at ``ratio`` (``None`` when undefined)."""
        from longctx.eval.compare import relative_drop

        return relative_drop(self.scores.get(ratio), self.reference)


def compression_rows(index: ScoreIndex) -> list[DropRow]:
    """Every compression sweep with its uncompressed reference (same model, task, length)."""
    rows = []
    keys = dict.fromkeys(
        (e.task, e.label, e.length, e.method) for e in index.entries if e.context == "compressed"
    )
    for task, label, length, method in keys:
        found = index.select(
            task=task, label=label, length=length, context="compressed", method=method
        )
        ref = index.score(task=task, label=label, length=length, context="full")
        rows.append(DropRow(task, label, length, method, ref, {e.ratio: e.score for e in found}))
    return rows


def compression_tables(index: ScoreIndex) -> list[Table]:
    """Scores per ratio, relative drop per ratio, mean drop per method/ratio, KV kept."""
    rows = compression_rows(index)
    if not rows:
        return []
    ratios = sorted({r for row in rows for r in row.scores})
    heads = [ratio_header(r) for r in ratios]
    fixed = ["task", "model", "length", "method"]
    scores = Table(
        "compression_scores",
        "Robustness: primary metric (%) by compression ratio",
        [*fixed, "uncompressed", *heads],
        ["text", "text", "text", "text", "pct", *["pct"] * len(ratios)],
    )
    drops = Table(
        "relative_drop",
        "Robustness: relative change (%) against the uncompressed reference",
        [*fixed, *heads],
        ["text", "text", "text", "text", *["signed"] * len(ratios)],
    )
    for row in rows:
        head: list[Cell] = [row.task, row.label, length_header(row.length), row.method]
        scores.rows.append([*head, row.reference, *[row.scores.get(r) for r in ratios]])
        drops.rows.append([*head, *[row.drop(r) for r in ratios]])
    columns_note = "Columns: the compression ratio of the setting (method@ratio)."
    scores.notes.append(columns_note)
    drops.notes += [
        "(score - reference) / reference * 100, where the reference is the uncompressed run of "
        "the same model, task and length.",
        columns_note,
    ]
    if any(row.reference is None for row in rows):
        drops.notes.append("Rows without an uncompressed reference have no relative change.")
    if any(row.reference == 0 for row in rows):
        drops.notes.append("A reference score of 0 leaves the relative change undefined.")
    methods = list(dict.fromkeys(row.method for row in rows))
    average = Table(
        "average_drop",
        "Robustness: mean relative change (%) per method and ratio",
        ["method", *heads],
        ["text", *["signed"] * len(ratios)],
    )
    for method in methods:
        mine = [row for row in rows if row.method == method]
        cells: list[Cell] = [method]
        for r in ratios:
            values = [d for d in (row.drop(r) for row in mine) if d is not None]
            cells.append(fmean(values) if values else None)
        average.rows.append(cells)
        average.notes.append(
            f"{method}: mean over {len(mine)} (task, model, length) sweeps with a reference."
        )
    tables = [scores, drops, average]
    kept = [e for e in index.entries if e.context == "compressed" and e.kv_kept is not None]
    if kept:
        kv = Table(
            "kv_kept",
            "Robustness: KV-cache bytes kept (%), mean over predictions",
            ["method", *heads],
            ["text", *["pct"] * len(ratios)],
        )
        for method in methods:
            cells = [method]
            for r in ratios:
                values = [e.kv_kept for e in kept if e.method == method and e.ratio == r]
                cells.append(fmean(values) if values else None)
            kv.rows.append(cells)
        tables.append(kv)
    return tables


@dataclass(frozen=True)
class Gain:
    """Full-context score of a fine-tuned variant and its base on one task."""

    variant: str
    base: str
    task: str
    domain: str
    lengths: tuple[int, ...]
    base_score: float | None
    variant_score: float | None

    @property
    def gain(self) -> float | None:
        if self.base_score is None or self.variant_score is None:
            return None
        return self.variant_score - self.base_score


def finetune_gains(index: ScoreIndex, bases: Bases) -> list[Gain]:
    """Each variant against its base, per task, over the lengths both were evaluated at."""
    gains = []
    for variant, base in bases.base_of.items():
        for task in index.tasks:
            mine = set(index.lengths(task=task, label=variant, context="full"))
            theirs = set(index.lengths(task=task, label=base, context="full"))
            if not mine and not theirs:
                continue
            common = tuple(sorted(mine & theirs))
            b = v = None
            if common:
                b = index.mean_score(common, task=task, label=base, context="full")
                v = index.mean_score(common, task=task, label=variant, context="full")
            gains.append(Gain(variant, base, task, index.domain[task], common, b, v))
    return gains


def gain_table(gains: Sequence[Gain], bases: Bases) -> Table | None:
    """Variant vs base per task (``None`` when no variant has a base with runs)."""
    if not gains:
        return None
    table = Table(
        "finetune_gain",
        "Fine-tuning: full-context score of each variant against its base",
        ["variant", "base", "task", "domain", "lengths", "base score", "variant score", "gain"],
        ["text", "text", "text", "text", "text", "pct", "pct", "points"],
    )
    for g in gains:
        lengths = ", ".join(length_header(n) for n in g.lengths) or "none in common"
        table.rows.append(
            [g.variant, g.base, g.task, g.domain, lengths, g.base_score, g.variant_score, g.gain]
        )
    table.notes.append(
        "Scores in %, gain in percentage points, averaged over the lengths both were run at."
    )
    table.notes += bases.notes
    return table
