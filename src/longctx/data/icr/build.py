"""Build the in-context-retrieval training data: ``train.jsonl``, ``validation.jsonl``, a card.

For each question: its gold passages plus hard negatives retrieved from a corpus (see
:mod:`.negatives`), false negatives relabelled (:mod:`.relabel`), the gold placed at a
stratified depth and the prompt filled to the token budget (:mod:`.assemble`), and the targets
of every variant (:func:`longctx.train.targets.make_targets`). Questions go to validation by a
hash of their normalised text, so a question is never in both splits and the split does not
depend on the seed or on the other questions.

Each output line holds ``id``, ``task``, ``question``, ``answers``, ``documents`` (context order,
each ``{id, title, text, is_gold, relabelled}``), ``gold_ids`` (1-based ``[DOC i]`` numbers),
``prompt`` (the user message without instruction or chat template; see
:func:`.assemble.user_message`), ``targets`` (``{format: text}`` for all five formats),
``depth``, ``depth_bin`` and ``n_tokens`` (chat-templated prompt tokens of the longest variant).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from longctx.data.example import Example
from longctx.data.icr.assemble import (
    N_BINS,
    PROMPT_TEMPLATE,
    PromptCounter,
    bin_bounds,
    depth_bin,
    fill,
    fit_layout,
)
from longctx.data.icr.config import BuildConfig
from longctx.data.icr.negatives import retrieve_negatives
from longctx.data.icr.relabel import relabel
from longctx.data.icr.sources import corpus_from_examples, read_corpus, read_source
from longctx.eval.judge import Judge
from longctx.eval.scoring import normalize_answer
from longctx.train.targets import make_targets

SPLITS = ("train", "validation")


@dataclass
class BuildReport:
    """What :func:`build_icr_dataset` wrote.

    Attributes:
        out: The output folder.
        counts: ``read``, ``kept``, ``train``, ``validation`` and the ``dropped_*`` reasons.
        relabel: ``promoted``, ``confirmed``, ``rejected``, ``judge_errors``.
        card: The content of ``data_card.json``.
    """

    out: Path
    counts: dict[str, int] = field(default_factory=dict)
    relabel: dict[str, int] = field(default_factory=dict)
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def train_path(self) -> Path:
        return self.out / "train.jsonl"

    @property
    def validation_path(self) -> Path:
        return self.out / "validation.jsonl"


def split_of(question: str, validation_fraction: float) -> str:
    """``"validation"`` for a deterministic ``validation_fraction`` of questions, else train."""
    digest = hashlib.sha256(normalize_answer(question).encode()).hexdigest()
    return "validation" if int(digest[:12], 16) / 16**12 < validation_fraction else "train"


def _unique_ids(examples: list[Example]) -> None:
    seen: Counter[str] = Counter()
    for ex in examples:
        seen[ex.id] += 1
        if seen[ex.id] > 1:
            ex.id = f"{ex.id}#{seen[ex.id]}"


def _bin_name(i: int) -> str:
    lo, hi = bin_bounds(i)
    return f"[{lo:.1f}, {hi:.1f}{']' if i == N_BINS - 1 else ')'}"


def _histogram(values: list[float], edges: list[float]) -> list[int]:
    counts = [0] * (len(edges) - 1)
    for v in values:
        i = next((j for j in range(len(edges) - 1) if v < edges[j + 1]), len(edges) - 2)
        counts[i] += 1
    return counts


def _record(
    ex: Example,
    ranked: list,
    bin_index: int,
    counter: PromptCounter,
    config: BuildConfig,
    judge: Judge | None,
    totals: Counter[str],
) -> dict[str, Any] | str:
    """The output record of one example, or the reason it was dropped."""
    gold = ex.gold_documents
    if not ex.answers or not any(a.strip() for a in ex.answers):
        return "no_answer"
    if not gold:
        return "no_gold"
    chosen = fill(ex.question, gold, ranked, counter, config.max_tokens)
    if chosen is None:
        return "over_budget"
    rel = relabel(ex.question, ex.answers, gold, chosen, config.relabel_threshold, judge)
    totals.update(rel.counts)
    seed = f"{config.seed}:{ex.id}"
    fitted = fit_layout(
        ex.question, gold + rel.promoted, rel.negatives, bin_index, counter, config.max_tokens, seed
    )
    if fitted is None:
        return "over_budget"
    built, n_tokens = fitted
    flags = {id(d): rel.flags[d.id] for d in rel.promoted}
    placed = Example(ex.id, ex.question, ex.answers, built.documents, ex.task, ex.meta)
    return {
        "id": ex.id,
        "task": ex.task,
        "question": ex.question,
        "answers": list(ex.answers),
        "documents": [{**vars(d), "relabelled": flags.get(id(d))} for d in built.documents],
        "gold_ids": built.gold_positions,
        "prompt": PROMPT_TEMPLATE.format(context=built.text, question=ex.question.strip()),
        "targets": make_targets(placed, built, seed=config.seed),
        "depth": round(built.depth or 0.0, 4),
        "depth_bin": bin_index,
        "n_tokens": n_tokens,
    }


def build_icr_dataset(
    config: BuildConfig,
    on_progress: Callable[[int, int], None] | None = None,
    judge: Judge | None = None,
    on_status: Callable[[str], None] | None = None,
    tokenizer: Any = None,
) -> BuildReport:
    """Build the training data described by ``config`` into ``config.out``.

    Args:
        config: The build configuration.
        on_progress: Called with ``(done, total)`` after each question.
        judge: Stage-2 relabelling judge; default: a server judge when ``config.judge_url`` is
            set, else none.
        on_status: Receives human-readable progress messages.
        tokenizer: An already loaded tokenizer (default: loaded from ``config.tokenizer``).

    Returns:
        The :class:`BuildReport` (the card is also written to ``data_card.json``).

    Raises:
        DataError: A source or corpus line is malformed (file and line named).
        FileNotFoundError: A source or corpus file does not exist.
    """
    from longctx.models.loader import load_tokenizer

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    per_source = [read_source(s, config.seed) for s in config.sources]
    examples = [ex for exs in per_source for ex in exs]
    _unique_ids(examples)
    corpus = read_corpus(config.corpus) if config.corpus else corpus_from_examples(examples)
    k = config.negatives if config.negatives is not None else config.max_tokens // 32 + 16
    ranked = retrieve_negatives(
        examples, corpus, k, config.retriever, config.min_words, config.index_dir, on_status
    )
    if judge is None and config.judge_url:
        from longctx.eval.judge import make_judge

        judge = make_judge(config.judge_url, config.judge_model, cache_dir=out / "judge_cache")
    counter = PromptCounter(tokenizer or load_tokenizer(config.tokenizer))
    counts: Counter[str] = Counter(read=len(examples))
    totals: Counter[str] = Counter()
    kept: list[dict[str, Any]] = []
    next_bin = dict.fromkeys(SPLITS, 0)
    handles = {s: open(out / f"{s}.jsonl", "w", encoding="utf-8") for s in SPLITS}
    try:
        for done, (ex, negs) in enumerate(zip(examples, ranked, strict=True), start=1):
            split = split_of(ex.question, config.validation_fraction)
            result = _record(ex, negs, next_bin[split], counter, config, judge, totals)
            if isinstance(result, str):
                counts[f"dropped_{result}"] += 1
            else:
                next_bin[split] = (next_bin[split] + 1) % N_BINS
                counts[split] += 1
                handles[split].write(json.dumps(result, ensure_ascii=False) + "\n")
                kept.append({"n_tokens": result["n_tokens"], "depth": result["depth"]})
            if on_progress:
                on_progress(done, len(examples))
    finally:
        for handle in handles.values():
            handle.close()
    counts["kept"] = len(kept)
    relabel_counts = {k: totals[k] for k in ("promoted", "confirmed", "rejected", "judge_errors")}
    length_edges = [round(config.max_tokens * i / 10) for i in range(11)]
    card = {
        "sources": [
            {**s.model_dump(), "examples": len(exs)}
            for s, exs in zip(config.sources, per_source, strict=True)
        ],
        "corpus": {"path": config.corpus, "passages": len(corpus)},
        "counts": dict(counts),
        "length_histogram": {
            "edges": length_edges,
            "counts": _histogram([r["n_tokens"] for r in kept], length_edges),
        },
        "depth_histogram": {
            _bin_name(i): sum(depth_bin(r["depth"]) == i for r in kept) for i in range(N_BINS)
        },
        "relabel": relabel_counts,
        "seed": config.seed,
        "prompt": {
            "stored": PROMPT_TEMPLATE,
            "user_message": "INSTRUCTIONS[target_format] + blank line + prompt",
            "chat_template": "applied by the trainer; n_tokens counts it",
        },
        "config": config.model_dump(mode="json"),
    }
    (out / "data_card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    return BuildReport(out=out, counts=dict(counts), relabel=relabel_counts, card=card)
