"""Aggregate prediction records into the metrics of a run folder."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from statistics import fmean
from typing import Any


def aggregate(records: Iterable[dict[str, Any]], task: str, model: str) -> dict[str, Any]:
    """Mean scores per (mode, length) group, plus counts and mean prompt length.

    Args:
        records: Prediction records with ``mode``, ``length``, ``scores`` and ``prompt_tokens``.
        task: Task name stored in the metrics.
        model: Model spec stored in the metrics.

    Returns:
        ``{"task", "model", "n_predictions", "groups": [{"mode", "length", "n", <score means>,
        "prompt_tokens", "truncated"}]}``, groups sorted by mode then length.
    """
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["mode"], int(r["length"]))].append(r)
    order = {"full": 0, "gold": 1, "none": 2}
    rows = []
    for (mode, length), items in sorted(
        groups.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0][0], kv[0][1])
    ):
        names = sorted({k for r in items for k in r["scores"]})
        row: dict[str, Any] = {"mode": mode, "length": length, "n": len(items)}
        for name in names:
            row[name] = fmean(r["scores"][name] for r in items if name in r["scores"])
        row["prompt_tokens"] = fmean(r["prompt_tokens"] for r in items)
        row["truncated"] = sum(1 for r in items if r.get("truncated_tokens", 0) > 0)
        rows.append(row)
    n = sum(len(v) for v in groups.values())
    return {"task": task, "model": model, "n_predictions": n, "groups": rows}
