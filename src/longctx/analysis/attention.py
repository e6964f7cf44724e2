"""Attention-based retrieval analysis: which documents does the model attend to while answering?

For each prediction, the prompt is rebuilt from its example and recorded document order, the
model is run over the prompt and its own answer, and the attention mass that the answering
positions put on each ``[DOC i]`` span ranks the documents. The ranking is scored by NDCG@10
against the gold positions, and NDCG@10 is correlated (Pearson) with answer correctness.

Contexts are built again exactly as ``longctx eval`` built them (same seed, distractor pool and
token budgets) and checked against the recorded ``doc_ids``; when they differ (another
tokenizer, changed data) the recorded ids are resolved instead, and a distractor that was cut to
fill the budget comes back whole (counted in ``contexts_from_doc_ids``; ``prompt_tokens_rebuilt``
then differs from ``prompt_tokens``). Middle-truncated prompts are skipped.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import fmean
from typing import Any

from longctx.analysis.prompts import (
    DocumentResolver,
    context_documents,
    document_spans,
    encode_with_spans,
    load_run_source,
    predict_examples,
    rebuild_prompt,
)
from longctx.analysis.ranking import ndcg_at_k, pearson, rank_by_score
from longctx.analysis.weights import (
    attention_doc_mass_by_layer,
    attention_doc_scores,
    eager_attention,
    layer_range_name,
    parse_layers,
)
from longctx.data.example import Example

__all__ = [
    "analyze_attention",
    "attention_doc_mass_by_layer",
    "attention_doc_scores",
    "document_spans",
    "eager_attention",
    "encode_with_spans",
    "parse_layers",
]


def _n_layers(model: Any) -> int:
    config = model.config
    n = getattr(config, "num_hidden_layers", None)
    if n is None and hasattr(config, "get_text_config"):
        n = getattr(config.get_text_config(), "num_hidden_layers", None)
    if not n:
        raise ValueError(f"cannot tell the number of layers of {type(model).__name__}")
    return int(n)


def _layer_ranges(layers: str | Sequence[str] | range, n_layers: int) -> dict[str, range]:
    specs = [layers] if isinstance(layers, str | range) else list(layers)
    ranges: dict[str, range] = {}
    for spec in [*specs, "all"]:
        chosen = parse_layers(spec, n_layers)
        name = "all" if chosen == range(n_layers) else layer_range_name(chosen)
        ranges.setdefault(name, chosen)
    return ranges


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def _skip_reason(record: dict[str, Any], modes: Sequence[str], metric: str) -> str | None:
    if record.get("mode") not in modes:
        return f"mode {record.get('mode')} not analysed"
    if record.get("setting"):
        return "a setting (compression or retriever) other than plain full context"
    if not record.get("doc_ids"):
        return "no documents in context"
    if not record.get("gold_positions"):
        return "no gold document in context"
    if record.get("truncated_tokens", 0) > 0:
        return "prompt was middle-truncated"
    if not isinstance(record.get("scores", {}).get(metric), int | float):
        return f"no {metric} score"
    return None


def _summary(rows: list[dict[str, Any]], ranges: dict[str, range], n_layers: int, key: str):
    correct = [r["correct"] for r in rows]
    out: dict[str, Any] = {"ranges": {}, "per_layer": []}
    for name, chosen in ranges.items():
        values = [r["by_range"][name][key] for r in rows]
        notes: list[str] = []
        r, p = pearson(values, correct, notes)
        finite = [v for v in values if not math.isnan(v)]
        out["ranges"][name] = {
            "layers": [chosen.start, chosen.stop],
            f"mean_{key}": fmean(finite) if finite else math.nan,
            "pearson_r": r,
            "pearson_p": p,
            "n": len(values),
            "notes": notes,
        }
    for layer in range(n_layers):
        values = [r[f"{key}_by_layer"][layer] for r in rows]
        finite = [v for v in values if not math.isnan(v)]
        r, p = pearson(values, correct)
        out["per_layer"].append(
            {
                "layer": layer,
                f"mean_{key}": fmean(finite) if finite else math.nan,
                "pearson_r": r,
                "pearson_p": p,
            }
        )
    return out


def analyze_attention(
    loaded: Any,
    source: str | Path | Sequence[Example],
    layers: str | range | Sequence[str] = "all",
    out: str | Path | None = None,
    *,
    task: str | None = None,
    length: int = 2048,
    modes: Sequence[str] = ("full",),
    metric: str = "subem",
    k: int = 10,
    limit: int | None = None,
    use_answer: bool = True,
    max_answer_tokens: int = 32,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Rank each prediction's documents by attention and relate ranking quality to correctness.

    Args:
        loaded: The :class:`~longctx.models.loader.LoadedModel` to analyse (usually the run's).
        source: A run folder (``config.yaml`` and ``predictions.jsonl``; its examples are
            reloaded from the config's task and data), or examples, which are first evaluated
            in full mode at ``length`` tokens with ``loaded``.
        layers: Layer range(s): ``"all"``, ``"a:b"`` (layers a..b-1) or a list of them; the
            first is the primary one and ``"all"`` is always added.
        out: Folder for ``analysis.json`` (not written when ``None``).
        task: Task name for examples (default: the examples' ``task``, else ``synthetic``).
        length: Context length for examples.
        modes: Prediction modes analysed (``full``; ``gold`` contexts hold only gold documents).
        metric: Score taken as answer correctness.
        k: NDCG cut-off.
        limit: Analyse only the first N usable predictions.
        use_answer: Attend from the model's recorded answer tokens (else from the last prompt
            token only).
        max_answer_tokens: Answer tokens used at most.
        on_progress: Called with ``(done, total)`` after each prediction.

    Returns:
        ``{"source", "model", "task", "metric", "k", "summary", "predictions"}``: per prediction
        ``ndcg@k``, ``correct``, ``ranking`` (1-based positions, most attended first; primary
        range), ``gold_mass`` and per range/layer details; the summary holds mean NDCG@k and the
        Pearson r and p of NDCG@k against correctness per layer range and per layer. Undefined
        values (a constant variable's correlation) are ``None``.
    """
    model, tokenizer = loaded.model, loaded.tokenizer
    n_layers = _n_layers(model)
    ranges = _layer_ranges(layers, n_layers)
    primary = next(iter(ranges))
    if isinstance(source, str | Path):
        task_obj, evaluator, examples, records, cfg = load_run_source(Path(source), loaded)
        origin = str(source)
    else:
        examples = list(source)
        task_obj, evaluator, records = predict_examples(loaded, examples[:limit], task, length)
        cfg, origin = {}, f"{len(records)} examples at {length} tokens"
    by_id = {ex.id: ex for ex in examples}
    resolver = DocumentResolver(examples)
    skipped: Counter[str] = Counter()
    usable = []
    for record in records:
        reason = _skip_reason(record, modes, metric)
        if reason is None and record["id"] not in by_id:
            reason = "example not found in the data"
        if reason:
            skipped[reason] += 1
        else:
            usable.append(record)
    usable = usable[:limit] if limit is not None else usable
    key = f"ndcg@{k}"
    rows = []
    for done, record in enumerate(usable, start=1):
        ex = by_id[record["id"]]
        try:
            docs, exact = context_documents(evaluator, resolver, ex, record)
        except KeyError:
            skipped["document id not found in the data"] += 1
            continue
        rebuilt = rebuild_prompt(task_obj, tokenizer, ex, docs)
        answer = tokenizer.encode(record.get("output") or "", add_special_tokens=False)
        answer = answer[:max_answer_tokens] if use_answer else []
        if len(rebuilt.ids) + len(answer) > loaded.window:
            skipped["rebuilt prompt longer than the model window"] += 1
            continue
        masses = attention_doc_mass_by_layer(model, rebuilt.ids, rebuilt.spans, answer)
        gold = list(record["gold_positions"])
        by_range = {}
        for name, chosen in ranges.items():
            scores = masses[list(chosen)].mean(axis=0)
            ranking = rank_by_score(list(scores))
            by_range[name] = {
                key: ndcg_at_k(ranking, gold, k),
                "ranking": ranking,
                "scores": [round(float(s), 6) for s in scores],
            }
        main = by_range[primary]
        rows.append(
            {
                "id": record["id"],
                "mode": record["mode"],
                "length": record["length"],
                "correct": float(record["scores"][metric]),
                key: main[key],
                "ranking": main["ranking"],
                "gold_positions": gold,
                "gold_mass": float(sum(main["scores"][g - 1] for g in gold if 0 < g <= len(docs))),
                "n_docs": len(docs),
                "prompt_tokens": record.get("prompt_tokens"),
                "prompt_tokens_rebuilt": len(rebuilt.ids),
                "context_rebuilt": "exact" if exact else "from doc ids",
                "answer_tokens": len(answer),
                "by_range": by_range,
                f"{key}_by_layer": [ndcg_at_k(rank_by_score(list(m)), gold, k) for m in masses],
            }
        )
        if on_progress:
            on_progress(done, len(usable))
    summary = _summary(rows, ranges, n_layers, key)
    summary.update(
        {
            "primary": primary,
            "n_analyzed": len(rows),
            "skipped": dict(skipped),
            "contexts_from_doc_ids": sum(1 for r in rows if r["context_rebuilt"] != "exact"),
            "prompt_tokens_differ": sum(
                1 for r in rows if r["prompt_tokens"] not in (None, r["prompt_tokens_rebuilt"])
            ),
            "accuracy": fmean(r["correct"] for r in rows) if rows else math.nan,
            "mean_gold_mass": fmean(r["gold_mass"] for r in rows) if rows else math.nan,
        }
    )
    result = _nan_to_none(
        {
            "source": origin,
            "model": getattr(loaded, "spec", ""),
            "run_model": cfg.get("model"),
            "task": task_obj.name,
            "metric": metric,
            "k": k,
            "query": "answer tokens" if use_answer else "last prompt token",
            "summary": summary,
            "predictions": rows,
        }
    )
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "analysis.json"
        path.write_text(json.dumps(result, indent=2))
        result["output"] = str(path)
    return result
