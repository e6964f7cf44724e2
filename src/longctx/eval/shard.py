"""Split a task across machines (``--shard i/n``) and merge the shards into one run folder."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from longctx.config import dump_config
from longctx.eval.config import IDENTITY_FIELDS, EvalConfig
from longctx.eval.metrics import aggregate, record_key
from longctx.utils.jsonl import JsonlAppender, read_jsonl_tolerant

T = TypeVar("T")
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)``: shard index (0-based) and shard count."""
    match = _SHARD.match(text or "")
    if not match:
        raise ValueError(f"bad shard {text!r}: use i/n with 0 <= i < n, e.g. 0/4")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"bad shard {text!r}: need 0 <= i < n")
    return index, count


def select_shard(items: Sequence[T], shard: str | None) -> list[T]:
    """Every n-th item starting at i (round-robin, so shards get similar lengths)."""
    if not shard:
        return list(items)
    index, count = parse_shard(shard)
    return list(items[index::count])


def merge_runs(run_dirs: Sequence[str | Path], out: str | Path) -> dict[str, Any]:
    """Merge shard run folders into one: predictions concatenated, metrics recomputed.

    The shards must share the fields that define a prediction (task, data, model, seed, ...);
    duplicate predictions (same id, mode, length, setting) are kept once.

    Raises:
        ValueError: A folder is not a run, or the shards disagree on a defining field.
    """
    from longctx.eval.tasks import get_task

    configs = []
    for d in run_dirs:
        path = Path(d) / "config.yaml"
        if not path.exists():
            raise ValueError(f"{d} is not a run folder: {path} is missing")
        configs.append(yaml.safe_load(path.read_text()))
    first = configs[0]
    for d, cfg in zip(run_dirs[1:], configs[1:], strict=True):
        diff = [f for f in IDENTITY_FIELDS if cfg.get(f) != first.get(f)]
        if diff:
            raise ValueError(
                f"{d} differs from {run_dirs[0]} in {', '.join(diff)}: not shards of one run"
            )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seen: set[tuple] = set()
    records: list[dict[str, Any]] = []
    for d in run_dirs:
        for r in read_jsonl_tolerant(Path(d) / "predictions.jsonl"):
            if record_key(r) not in seen:
                seen.add(record_key(r))
                records.append(r)
    pred_path = out / "predictions.jsonl"
    pred_path.unlink(missing_ok=True)
    with JsonlAppender(pred_path) as sink:
        for r in records:
            sink.write(r)
    merged = dict(first, shard=None, out=str(out))
    config = EvalConfig.model_validate(merged)
    dump_config(config, out / "config.yaml")
    metrics = aggregate(records, task=get_task(config.task), model=config.model)
    metrics["merged_from"] = [str(d) for d in run_dirs]
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
