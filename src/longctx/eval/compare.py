"""Robustness of a model under KV-cache compression: relative drop against full context.

``relative drop (%) = (score(method@ratio) - score(reference)) / score(reference) * 100`` for
the same model, task and length, where the reference is the uncompressed run (setting ``""``,
``none@0`` or any ``method@0``). Negative numbers are losses. Reads only run folders.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from statistics import fmean
from typing import Any

import yaml


def relative_drop(score: float | None, reference: float | None) -> float | None:
    """``(score - reference) / reference * 100``; ``None`` when either is missing or the
    reference is 0 (a relative change is undefined there)."""
    if score is None or not reference:
        return None
    return (score - reference) / reference * 100.0


def _label(run_dir: Path) -> str:
    config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    return str(config.get("label") or config.get("model", run_dir.name))


def _is_reference(setting: str) -> bool:
    if not setting:
        return True
    method, _, ratio = setting.partition("@")
    return method == "none" or float(ratio or 0) == 0.0


def load_scores(run_dirs: Sequence[str | Path]) -> list[dict[str, Any]]:
    """One row per (model, task, length, setting) of the runs' full-mode groups."""
    rows = []
    for d in map(Path, run_dirs):
        for name in ("config.yaml", "metrics.json"):
            if not (d / name).exists():
                raise ValueError(f"{d} is not a finished run folder: {name} is missing")
        metrics = json.loads((d / "metrics.json").read_text())
        metric = metrics.get("metric", "subem")
        for g in metrics["groups"]:
            if g["mode"] != "full" or metric not in g:
                continue
            rows.append(
                {
                    "model": _label(d),
                    "task": metrics["task"],
                    "length": g["length"],
                    "setting": g.get("setting", ""),
                    "metric": metric,
                    "score": g[metric],
                }
            )
    return rows


def robustness_table(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Relative drops of every compressed setting against its uncompressed reference.

    Returns:
        ``{"rows": [{model, task, length, setting, score, reference, drop_pct}], "average":
        [{model, setting, drop_pct, n_tasks}]}``; ``drop_pct`` is ``None`` where there is no
        reference or the reference scores 0 (a relative drop is undefined there).
    """
    refs: dict[tuple, float] = {}
    for r in rows:
        if _is_reference(r["setting"]):
            refs.setdefault((r["model"], r["task"], r["length"]), r["score"])
    table = []
    for r in rows:
        if _is_reference(r["setting"]):
            continue
        ref = refs.get((r["model"], r["task"], r["length"]))
        drop = relative_drop(r["score"], ref)
        table.append(dict(r, reference=ref, drop_pct=drop))
    per: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in table:
        if r["drop_pct"] is not None:
            per[(r["model"], r["setting"])].append(r["drop_pct"])
    average = [
        {"model": m, "setting": s, "drop_pct": fmean(v), "n_tasks": len(v)}
        for (m, s), v in sorted(per.items())
    ]
    return {
        "rows": sorted(table, key=lambda r: (r["model"], r["task"], r["length"], r["setting"])),
        "average": average,
    }


def compare_runs(run_dirs: Sequence[str | Path], out: str | Path | None = None) -> dict[str, Any]:
    """Build the robustness table of run folders and write ``compare.json`` / ``compare.md``."""
    result = robustness_table(load_scores(run_dirs))
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "compare.json").write_text(json.dumps(result, indent=2))
        (out / "compare.md").write_text(to_markdown(result))
    return result


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:+.1f}"


def to_markdown(result: dict[str, Any]) -> str:
    """The robustness table as Markdown (scores in %, drops in relative %)."""
    lines = [
        "| model | task | length | setting | score | reference | drop % |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["rows"]:
        ref = "—" if r["reference"] is None else f"{100 * r['reference']:.1f}"
        lines.append(
            f"| {r['model']} | {r['task']} | {r['length']} | {r['setting']} | "
            f"{100 * r['score']:.1f} | {ref} | {_pct(r['drop_pct'])} |"
        )
    lines += ["", "| model | setting | mean drop % | tasks |", "| --- | --- | --- | --- |"]
    for a in result["average"]:
        lines.append(f"| {a['model']} | {a['setting']} | {_pct(a['drop_pct'])} | {a['n_tasks']} |")
    return "\n".join(lines) + "\n"
