"""Ranking quality and correlation helpers for retrieval analyses."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence

import numpy as np


def ndcg_at_k(ranked: Sequence[Hashable], gold: Iterable[Hashable], k: int = 10) -> float:
    """Normalised discounted cumulative gain at ``k`` with binary relevance.

    ``DCG@k = sum over the first k ranked items that are gold of 1 / log2(rank + 1)`` (rank from
    1; an item repeated in ``ranked`` counts once), divided by the ideal DCG of
    ``min(|gold|, k)`` gold items ranked first.

    Args:
        ranked: Items, best first (e.g. 1-based document positions).
        gold: The relevant items.
        k: Cut-off (>= 1).

    Returns:
        NDCG@k in [0, 1]; ``nan`` when there is no gold item (undefined).

    Raises:
        ValueError: When ``k < 1``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    relevant = set(gold)
    if not relevant:
        return math.nan
    seen: set[Hashable] = set()
    dcg = 0.0
    for rank, item in enumerate(ranked[:k], start=1):
        if item in relevant and item not in seen:
            dcg += 1.0 / math.log2(rank + 1)
        seen.add(item)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(relevant), k) + 1))
    return dcg / ideal


def rank_by_score(scores: Sequence[float]) -> list[int]:
    """1-based positions sorted by score, highest first (ties keep the earlier position)."""
    return [i + 1 for i in sorted(range(len(scores)), key=lambda i: (-scores[i], i))]


def pearson(
    x: Sequence[float], y: Sequence[float], notes: list[str] | None = None
) -> tuple[float, float]:
    """Pearson correlation and its two-sided p-value (``scipy.stats.pearsonr``).

    Pairs where either value is not finite (e.g. an undefined NDCG) are left out.

    Args:
        x: First variable.
        y: Second variable (same length).
        notes: When given, receives a line saying why the result is undefined or which pairs
            were left out.

    Returns:
        ``(r, p)``; ``(nan, nan)`` when fewer than two pairs remain or either variable is
        constant (the correlation is undefined then).

    Raises:
        ValueError: When ``x`` and ``y`` differ in length.
    """
    from scipy.stats import pearsonr

    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} vs {len(y)}")
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    if notes is not None and not keep.all():
        notes.append(f"{int((~keep).sum())} pair(s) with a non-finite value left out")
    a, b = a[keep], b[keep]
    if len(a) < 2:
        if notes is not None:
            notes.append(f"correlation undefined: {len(a)} pair(s), need at least 2")
        return math.nan, math.nan
    constant = [name for name, v in (("x", a), ("y", b)) if np.ptp(v) == 0]
    if constant:
        if notes is not None:
            notes.append(f"correlation undefined: {' and '.join(constant)} constant")
        return math.nan, math.nan
    result = pearsonr(a, b)
    return float(result.statistic), float(result.pvalue)
