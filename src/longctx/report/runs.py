"""Read evaluation run folders for reports (read-only: nothing in a run folder is changed).

A run folder holds ``config.yaml`` (the :class:`~longctx.eval.config.EvalConfig` dump, possibly
with extra ``label`` and ``base_model`` keys), ``predictions.jsonl`` and ``metrics.json`` (see
:mod:`longctx.eval.metrics`). Reports read only these three files.

Settings conventions read here:
    * RAG groups: ``mode="rag"``, ``length`` = token budget, ``setting`` = retriever name.
    * Compression groups: ``mode="full"``, ``setting="method@ratio"`` (``"snapkv@0.5"``);
      ``""``, ``"none@0"`` or any ratio 0 is the uncompressed reference.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

RUN_FILES = ("config.yaml", "predictions.jsonl", "metrics.json")


class RunFolderError(FileNotFoundError):
    """A run folder that is missing, lacks one of its files, or holds an unreadable file."""


@dataclass
class Run:
    """One evaluation run folder as a report sees it.

    Attributes:
        folder: The run folder.
        config: Parsed ``config.yaml``.
        predictions: Records of ``predictions.jsonl``.
        metrics: Parsed ``metrics.json``.
    """

    folder: Path
    config: dict[str, Any]
    predictions: list[dict[str, Any]]
    metrics: dict[str, Any]

    @property
    def model(self) -> str:
        """The model spec (``config.yaml``'s ``model``, else ``metrics.json``'s)."""
        return str(self.config.get("model") or self.metrics.get("model") or "?")

    @property
    def label(self) -> str:
        """Row label of the model or variant: ``config['label']`` if set, else the model spec."""
        return str(self.config.get("label") or self.model)

    @property
    def base_model(self) -> str | None:
        """The model this variant was fine-tuned from (``config['base_model']``), if any."""
        value = self.config.get("base_model")
        return str(value) if value else None

    @property
    def task(self) -> str:
        return str(self.metrics.get("task") or self.config.get("task") or "?")

    @property
    def metric(self) -> str:
        """Name of the primary score of the task."""
        return str(self.metrics.get("metric") or "subem")

    @property
    def domain(self) -> str:
        """``"in"``, ``"out"`` or ``"builtin"``."""
        return str(self.metrics.get("domain") or "in")

    @property
    def groups(self) -> list[dict[str, Any]]:
        return list(self.metrics.get("groups") or [])


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise RunFolderError(f"{path.parent}: {path.name} is not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise RunFolderError(f"{path.parent}: {path.name} is not a mapping")
    return data


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise RunFolderError(f"{path.parent}: {path.name} is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise RunFolderError(f"{path.parent}: {path.name} is not a JSON object")
    return data


def read_predictions(path: Path) -> list[dict[str, Any]]:
    """Records of a ``predictions.jsonl`` without modifying it.

    A partial last line (an interrupted run) is skipped with a warning; a bad line elsewhere is
    an error naming the folder and line.
    """
    lines = path.read_text(encoding="utf-8").split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            if all(not rest.strip() for rest in lines[number:]):
                logger.warning("%s, line %d: skipping a partial last record", path, number)
                break
            raise RunFolderError(
                f"{path.parent}: {path.name}, line {number}: invalid JSON ({err.msg})"
            ) from None
    return records


def load_run(folder: str | Path) -> Run:
    """Read one run folder.

    Raises:
        RunFolderError: The folder or one of its three files is missing, or a file is invalid
            (the message names the folder and the file).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise RunFolderError(f"run folder not found: {folder}")
    missing = [name for name in RUN_FILES if not (folder / name).is_file()]
    if missing:
        raise RunFolderError(
            f"{folder}: missing {', '.join(missing)} (a run folder holds "
            f"{', '.join(RUN_FILES)}; metrics.json is written when `longctx eval` finishes)"
        )
    config = _read_yaml(folder / "config.yaml")
    metrics = _read_json(folder / "metrics.json")
    groups = metrics.get("groups")
    if not isinstance(groups, list):
        raise RunFolderError(f"{folder}: metrics.json has no 'groups' list")
    for i, group in enumerate(groups):
        if not isinstance(group, dict) or "mode" not in group or "length" not in group:
            raise RunFolderError(f"{folder}: metrics.json groups[{i}] lacks 'mode' or 'length'")
    predictions = read_predictions(folder / "predictions.jsonl")
    return Run(folder, config, predictions, metrics)


def load_runs(run_dirs: Iterable[str | Path]) -> list[Run]:
    """Read run folders (``config.yaml``, ``predictions.jsonl`` and ``metrics.json`` only).

    Args:
        run_dirs: Run folders, in the order their models should appear in the report.

    Returns:
        One :class:`Run` per folder.

    Raises:
        RunFolderError: Naming the folder and the missing or invalid file.
        ValueError: When no folder is given.
    """
    runs = [load_run(d) for d in run_dirs]
    if not runs:
        raise ValueError("no run folders given")
    return runs


@dataclass(frozen=True)
class Setting:
    """What a group's ``(mode, setting)`` means.

    Attributes:
        context: ``"full"`` (uncompressed full context), ``"compressed"``, ``"rag"``,
            ``"gold"``, ``"none"`` or ``"other"`` (a full-mode setting that is not method@ratio).
        method: Compression method or retriever name (``""`` otherwise).
        ratio: Compression ratio (0.0 for the uncompressed reference).
    """

    context: str
    method: str = ""
    ratio: float = 0.0


def parse_setting(mode: str, setting: str, compress: Mapping[str, Any] | None = None) -> Setting:
    """Classify a group by its mode and setting string.

    Args:
        mode: ``full``, ``rag``, ``gold`` or ``none``.
        setting: ``""``, a retriever name (rag) or ``method@ratio`` (compression).
        compress: A prediction's ``compress`` field, used when the setting string is not
            ``method@ratio``.
    """
    setting = (setting or "").strip()
    if mode == "rag":
        return Setting("rag", setting or "rag")
    if mode in ("gold", "none"):
        return Setting(mode, setting)
    if mode != "full":
        return Setting("other", f"{mode}:{setting}" if setting else mode)
    method, ratio = "", 0.0
    if "@" in setting:
        name, _, value = setting.rpartition("@")
        try:
            method, ratio = name.strip(), float(value)
        except ValueError:
            method = ""
    elif compress and "method" in compress:
        method, ratio = str(compress["method"]), float(compress.get("ratio") or 0.0)
    elif setting in ("", "none"):
        return Setting("full")
    else:
        return Setting("other", setting)
    if not method and setting:
        return Setting("other", setting)
    if method in ("", "none") or ratio == 0.0 or math.isnan(ratio):
        return Setting("full")
    return Setting("compressed", method, ratio)


@dataclass
class Bases:
    """Which variant was fine-tuned from which base (labels), and why some have no base.

    Attributes:
        base_of: Variant label -> base label.
        notes: Variants whose base has no runs, and other remarks.
    """

    base_of: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def parse_base_pairs(items: Sequence[str]) -> dict[str, str]:
    """``["sft-ao=smollm2", ...]`` (``--base VARIANT=BASE``) -> ``{"sft-ao": "smollm2"}``."""
    pairs = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--base {item!r}: use VARIANT=BASE (labels or model specs)")
        variant, base = item.split("=", 1)
        pairs[variant.strip()] = base.strip()
    return pairs


def resolve_bases(runs: Sequence[Run], base: Mapping[str, str] | None = None) -> Bases:
    """Pair each fine-tuned variant with its base model's label.

    A variant is a label whose runs have ``base_model`` in their config, or a key of ``base``
    (which overrides the config). Keys and values may be labels or model specs; the base is the
    label whose runs have that label or model.
    """
    base = dict(base or {})
    out = Bases()
    labels = list(dict.fromkeys(r.label for r in runs))
    for label in labels:
        mine = [r for r in runs if r.label == label]
        spec = base.get(label) or next((base[r.model] for r in mine if r.model in base), None)
        spec = spec or next((r.base_model for r in mine if r.base_model), None)
        if not spec:
            continue
        found = next(
            (r.label for r in runs if r.label != label and spec in (r.label, r.model)), None
        )
        if found is None:
            out.notes.append(
                f"variant {label!r}: no run of its base model {spec!r}; its fine-tuning gain is "
                "not shown"
            )
        else:
            out.base_of[label] = found
    for key in base:
        if not any(key in (r.label, r.model) for r in runs):
            out.notes.append(f"--base {key}=...: no run has label or model {key!r}")
    return out
