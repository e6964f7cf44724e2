"""Assemble the report from run folders and write ``report.md``, ``report.html`` and the PNGs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from longctx.report import builders, plots
from longctx.report.index import IN_DOMAINS, build_index
from longctx.report.render import Report, Section, html_report, markdown_report
from longctx.report.runs import Run, load_runs, resolve_bases

TITLE = "longctx evaluation report"


def build_report(
    runs: Sequence[Run], out_dir: str | Path, base: Mapping[str, str] | None = None
) -> Report:
    """Build every table, draw every plot into ``out_dir``, and return the report.

    Args:
        runs: Loaded run folders (:func:`~longctx.report.runs.load_runs`).
        out_dir: Where the PNG plots are written.
        base: Variant -> base model (labels or model specs), overriding ``base_model`` in the
            variants' ``config.yaml``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    index = build_index(runs)
    bases = resolve_bases(runs, base)
    sections = [Section("Runs", tables=[builders.runs_table(runs)])]

    in_domain = Section(
        "In-domain tasks",
        "Primary metric in %. Full context is averaged over the evaluated lengths; gold-only "
        "and no-context rows bound it from above and below.",
    )
    for table in (
        builders.in_domain_summary(index),
        builders.length_table(
            index, IN_DOMAINS, "in_domain_lengths", "In-domain: primary metric (%) per length"
        ),
    ):
        if table is not None:
            in_domain.tables.append(table)
    if not in_domain.tables:
        in_domain.notes.append("No in-domain runs.")

    out_domain = Section(
        "Out-of-domain tasks",
        "Full context beside RAG at the same token budget (primary metric in %).",
    )
    table = builders.length_table(
        index,
        ("out",),
        "out_domain",
        "Out-of-domain: primary metric (%) per length or RAG budget",
        contexts=("full", "rag", "other", "gold", "none"),
    )
    if table is not None:
        out_domain.tables.append(table)
    else:
        out_domain.notes.append("No out-of-domain runs.")

    lengths = Section("Context length and retrieval")
    lengths.plots += [plots.score_vs_length(index, out), plots.full_vs_rag(index, out)]

    robustness = Section(
        "Robustness to KV-cache compression",
        "Score of each model and task by compression method and ratio, and the change relative "
        "to the uncompressed reference of the same model, task and length.",
    )
    robustness.tables += builders.compression_tables(index)
    robustness.plots.append(plots.score_vs_ratio(index, out))

    tuning = Section(
        "Fine-tuned variants",
        "Gain of each fine-tuned variant over its base model, in- and out-of-domain.",
    )
    gains = builders.finetune_gains(index, bases)
    table = builders.gain_table(gains, bases)
    if table is not None:
        tuning.tables.append(table)
        tuning.plots.append(plots.finetune_gain(gains, out))
    else:
        tuning.plots.append(plots.finetune_gain(gains, out, bases.notes))

    sections += [in_domain, out_domain, lengths, robustness, tuning]
    notes = list(index.notes)
    notes.append("Missing cells (no run, or a score the run does not have) are shown as —.")
    return Report(TITLE, sections, notes)


def write_report(
    run_dirs: Iterable[str | Path],
    out_dir: str | Path,
    base: Mapping[str, str] | None = None,
) -> Path:
    """Write the report of some run folders.

    Writes ``report.md`` (linking the PNGs beside it), the PNG plots, ``report.html`` (one
    self-contained page: inline CSS, images as data URIs, no scripts) and ``tables.json`` (every
    table's raw values) into ``out_dir``.

    Args:
        run_dirs: Run folders (each with ``config.yaml``, ``predictions.jsonl``, ``metrics.json``).
        out_dir: Output folder (created).
        base: Variant -> base model mapping (``--base VARIANT=BASE``; labels or model specs).

    Returns:
        The path of ``report.html``.

    Raises:
        RunFolderError: A run folder or one of its files is missing (named in the message).
    """
    runs = load_runs(run_dirs)
    out = Path(out_dir)
    report = build_report(runs, out, base)
    (out / "report.md").write_text(markdown_report(report), encoding="utf-8")
    path = out / "report.html"
    path.write_text(html_report(report), encoding="utf-8")
    tables = {k: t.to_dict() for k, t in report.tables.items()}
    (out / "tables.json").write_text(json.dumps(tables, indent=2), encoding="utf-8")
    return path
