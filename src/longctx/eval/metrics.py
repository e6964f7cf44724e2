"""Aggregate prediction records into the metrics of a run folder.

``metrics.json`` schema (what reports read)::

    {"task": str, "model": str, "metric": str (primary score name), "domain": "in"|"out"|"builtin",
     "n_predictions": int,
     "groups": [{"mode": str, "length": int, "setting": str, "n": int,
                 <score name>: float (mean over the group, 0..1), ...,
                 "prompt_tokens": float (mean), "truncated": int (predictions cut),
                 <task-specific aggregates>}, ...]}
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from statistics import fmean
from typing import Any

_MODE_ORDER = {"full": 0, "rag": 1, "gold": 2, "none": 3}


def record_key(record: dict[str, Any]) -> tuple[str, str, int, str]:
    """The identity of a prediction: (id, mode, length, setting)."""
    return (record["id"], record["mode"], int(record["length"]), record.get("setting", ""))


def group_key(record: dict[str, Any]) -> tuple[str, int, str]:
    return (record["mode"], int(record["length"]), record.get("setting", ""))


def aggregate(records: Iterable[dict[str, Any]], task: Any, model: str) -> dict[str, Any]:
    """Mean scores per (mode, length, setting) group, plus counts and mean prompt length.

    Args:
        records: Prediction records with ``mode``, ``length``, ``scores`` and ``prompt_tokens``.
        task: The :class:`~longctx.eval.tasks.Task` (or its name) the records belong to.
        model: Model spec stored in the metrics.
    """
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[group_key(r)].append(r)
    rows = []
    for (mode, length, setting), items in sorted(
        groups.items(), key=lambda kv: (_MODE_ORDER.get(kv[0][0], 9), kv[0])
    ):
        names = sorted({k for r in items for k, v in r["scores"].items() if _is_number(v)})
        row: dict[str, Any] = {"mode": mode, "length": length, "setting": setting, "n": len(items)}
        for name in names:
            row[name] = fmean(r["scores"][name] for r in items if _is_number(r["scores"].get(name)))
        row["prompt_tokens"] = fmean(r["prompt_tokens"] for r in items)
        row["truncated"] = sum(1 for r in items if r.get("truncated_tokens", 0) > 0)
        if hasattr(task, "summarize"):
            row.update(task.summarize(items))
        rows.append(row)
    n = sum(len(v) for v in groups.values())
    return {
        "task": getattr(task, "name", task),
        "model": model,
        "metric": getattr(task, "metric", "subem"),
        "domain": getattr(task, "domain", "in"),
        "n_predictions": n,
        "groups": rows,
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
