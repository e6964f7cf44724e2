"""Report plots (matplotlib, Agg backend, PNG). A plot without data is skipped with a note."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from longctx.report.builders import Gain, compression_rows  # noqa: E402
from longctx.report.index import IN_DOMAINS, ScoreIndex  # noqa: E402
from longctx.report.tables import length_header  # noqa: E402

DPI = 110


@dataclass(frozen=True)
class Plot:
    """One figure of the report.

    Attributes:
        key: File stem (``score_vs_length``).
        title: Caption.
        path: The PNG, or ``None`` when the plot was skipped.
        note: Why it was skipped, or a remark on what it shows.
    """

    key: str
    title: str
    path: Path | None
    note: str = ""


def _grid(n: int, width: float = 4.6, height: float = 3.4) -> tuple[Any, list[Any]]:
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    plt.close(fig)
    return path


def _pct(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else v * 100 for v in values]


def score_vs_length(index: ScoreIndex, out_dir: Path) -> Plot:
    """Score vs context length per task: full context (solid), RAG budgets (dashed)."""
    key, title = "score_vs_length", "Score vs context length"
    tasks = [
        t
        for t in index.tasks
        if any(e.length > 0 for e in index.select(task=t) if e.context in ("full", "rag"))
    ]
    if not tasks:
        return Plot(key, title, None, "No full-context or RAG scores with a length: skipped.")
    fig, axes = _grid(len(tasks))
    for ax, task in zip(axes, tasks, strict=True):
        for i, label in enumerate(index.labels):
            color = f"C{i % 10}"
            lines = [("full", "")] + sorted(
                {("rag", e.method) for e in index.select(task=task, label=label, context="rag")}
            )
            for k, (ctx, method) in enumerate(lines):
                found = [
                    e
                    for e in index.select(task=task, label=label, context=ctx, method=method)
                    if e.length > 0 and e.score is not None
                ]
                if not found:
                    continue
                found.sort(key=lambda e: e.length)
                name = label if ctx == "full" else f"{label} RAG ({method})"
                ax.plot(
                    [e.length for e in found],
                    _pct([e.score for e in found]),
                    marker="osD^v<>"[k % 7],
                    linestyle="-" if ctx == "full" else "--",
                    color=color,
                    label=name,
                )
        lengths = sorted({e.length for e in index.select(task=task) if e.length > 0})
        ax.set_xscale("log", base=2)
        ax.set_xticks(lengths, [length_header(n) for n in lengths])
        ax.minorticks_off()
        ax.set_title(f"{task} ({index.metric[task]})")
        ax.set_xlabel("context length (RAG: budget), tokens")
        ax.set_ylabel("score (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return Plot(key, title, _save(fig, out_dir / f"{key}.png"))


def score_vs_ratio(index: ScoreIndex, out_dir: Path) -> Plot:
    """Score vs compression ratio, one panel per (task, method), one line per model/variant;
    ratio 0 is the uncompressed reference."""
    key, title = "score_vs_ratio", "Score vs compression ratio"
    rows = compression_rows(index)
    if not rows:
        return Plot(key, title, None, "No compression runs (full mode, method@ratio): skipped.")
    panels = list(dict.fromkeys((r.task, r.method) for r in rows))
    fig, axes = _grid(len(panels))
    for ax, (task, method) in zip(axes, panels, strict=True):
        mine = [r for r in rows if r.task == task and r.method == method]
        several = len({r.length for r in mine}) > 1
        for row in mine:
            points = sorted([(0.0, row.reference)] + list(row.scores.items()), key=lambda p: p[0])
            points = [(x, y) for x, y in points if y is not None]
            name = row.label + (f" @{length_header(row.length)}" if several else "")
            color = f"C{index.labels.index(row.label) % 10}"
            ax.plot(
                [x for x, _ in points],
                _pct([y for _, y in points]),
                marker="o",
                label=name,
                color=color,
            )
        ax.set_title(f"{task}: {method}")
        ax.set_xlabel("compression ratio (0 = uncompressed)")
        ax.set_ylabel(f"{index.metric[task]} (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return Plot(key, title, _save(fig, out_dir / f"{key}.png"))


def full_vs_rag(index: ScoreIndex, out_dir: Path) -> Plot:
    """Bars per task: full context (LCLM) vs each retriever, per model, over the lengths both
    were run at (full context length = RAG budget)."""
    key, title = "full_vs_rag", "Long-context (full) vs RAG"
    tasks = [t for t in index.tasks if index.select(task=t, context="rag")]
    if not tasks:
        return Plot(key, title, None, "No RAG runs (mode rag): skipped.")
    fig, axes = _grid(len(tasks), width=5.2)
    skipped = []
    for ax, task in zip(axes, tasks, strict=True):
        retrievers = sorted({e.method for e in index.select(task=task, context="rag")})
        series = [("full", "")] + [("rag", m) for m in retrievers]
        width = 0.8 / len(series)
        shown: list[str] = []
        for label in index.labels:
            rag_lengths = set(index.lengths(task=task, label=label, context="rag"))
            full_lengths = set(index.lengths(task=task, label=label, context="full"))
            common = sorted(full_lengths & rag_lengths)
            if not common:
                if rag_lengths or index.select(task=task, label=label, context="full"):
                    skipped.append(f"{task}/{label}")
                continue
            i = len(shown)
            shown.append(label)
            for j, (ctx, method) in enumerate(series):
                value = index.mean_score(common, task=task, label=label, context=ctx, method=method)
                if value is None:
                    continue
                ax.bar(
                    i + (j - (len(series) - 1) / 2) * width,
                    value * 100,
                    width,
                    color=f"C{j}",
                    label="full context" if ctx == "full" else f"RAG ({method})",
                )
        handles, names = ax.get_legend_handles_labels()
        unique = dict(zip(names, handles, strict=True))
        ax.legend(unique.values(), unique.keys(), fontsize=7)
        ax.set_xticks(range(len(shown)), shown, rotation=20, fontsize=7)
        ax.set_title(f"{task} ({index.metric[task]})")
        ax.set_ylabel("score (%)")
        ax.grid(alpha=0.3, axis="y")
    note = "Each bar: mean over the lengths where both full context and RAG were run."
    if skipped:
        note += " No common length (left out): " + ", ".join(skipped) + "."
    return Plot(key, title, _save(fig, out_dir / f"{key}.png"), note)


def finetune_gain(gains: Sequence[Gain], out_dir: Path, notes: Sequence[str] = ()) -> Plot:
    """Mean gain (points) of each fine-tuned variant over its base: in- vs out-of-domain."""
    key, title = "finetune_gain", "In- vs out-of-domain gain of fine-tuned variants"
    usable = [g for g in gains if g.gain is not None]
    if not usable:
        why = "No fine-tuned variant with a base run on a common task and length: skipped."
        return Plot(key, title, None, " ".join([why, *notes]))
    variants = list(dict.fromkeys(g.variant for g in usable))
    fig, ax = plt.subplots(figsize=(max(4.5, 1.8 * len(variants) + 2), 3.6))
    groups = (("in-domain", IN_DOMAINS, "C0"), ("out-of-domain", ("out",), "C1"))
    for j, (name, domains, color) in enumerate(groups):
        for i, variant in enumerate(variants):
            values = [g.gain for g in usable if g.variant == variant and g.domain in domains]
            x = i + (j - 0.5) * 0.38
            if not values:
                ax.text(x, 0, "no data", ha="center", va="bottom", fontsize=7, rotation=90)
                continue
            ax.bar(x, fmean(values) * 100, 0.38, color=color, label=name)
    handles, names = ax.get_legend_handles_labels()
    unique = dict(zip(names, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), fontsize=8)
    ax.axhline(0, color="black", linewidth=0.8)
    bases = {g.variant: g.base for g in usable}
    ax.set_xticks(range(len(variants)), [f"{v}\nvs {bases[v]}" for v in variants], fontsize=7)
    ax.set_ylabel("mean gain (percentage points)")
    ax.grid(alpha=0.3, axis="y")
    note = "Mean over tasks of the full-context gain (see the fine-tuning table)."
    return Plot(key, title, _save(fig, out_dir / f"{key}.png"), " ".join([note, *notes]))
