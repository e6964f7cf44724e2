"""The reward registry, weight resolution and helpers shared by the reward modules.

A reward is a pure function ``(completion: str, example: dict, weights=None) -> float``. Its
weights live in a frozen dataclass with documented defaults and a ``bounds()`` method giving the
reward's ``[min, max]`` range for those weights. Weights are resolved in this order, later ones
winning: the dataclass defaults, the ``weights`` argument (what :func:`make_reward` binds), then
``example["reward_weights"]`` -- either flat (``{"w_ids": 1.0}``, keys the reward does not know
are ignored so one dict can serve several rewards) or per reward (``{"ids": {"w_ids": 1.0}}``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rapidfuzz.utils import default_process

RewardFn = Callable[..., float]
ComponentsFn = Callable[..., dict[str, float]]


@dataclass(frozen=True)
class RewardSpec:
    """A registered reward.

    Attributes:
        name: Registry name.
        fn: The reward ``(completion, example, weights=None) -> float``.
        weights_type: Its weights dataclass (with a ``bounds()`` method).
        components: ``(completion, example, weights=None) -> dict`` of the raw components, with
            the total under ``"reward"``; ``None`` when the reward has no parts.
    """

    name: str
    fn: RewardFn
    weights_type: type
    components: ComponentsFn | None = None


REWARDS: dict[str, RewardFn] = {}
SPECS: dict[str, RewardSpec] = {}


def register_reward(
    name: str, weights: type | None = None, components: ComponentsFn | None = None
) -> Callable[[RewardFn], RewardFn]:
    """Decorator registering a reward function under ``name``.

    Args:
        name: Registry name (must be new).
        weights: Weights dataclass of the reward.
        components: Function returning the reward's components (see :class:`RewardSpec`).

    Returns:
        The decorator; it returns the function unchanged.
    """

    def decorate(fn: RewardFn) -> RewardFn:
        if name in REWARDS:
            raise ValueError(f"reward {name!r} is already registered")
        REWARDS[name] = fn
        SPECS[name] = RewardSpec(name, fn, weights or NoWeights, components)
        return fn

    return decorate


@dataclass(frozen=True)
class NoWeights:
    """Placeholder weights of a reward without parameters (range [0, 1])."""

    def bounds(self) -> tuple[float, float]:
        return 0.0, 1.0


def resolve_weights(
    weights_type: type, name: str, example: Mapping[str, Any], weights: Any = None
) -> Any:
    """The weights of one call: defaults, then ``weights``, then ``example["reward_weights"]``.

    Args:
        weights_type: The reward's weights dataclass.
        name: The reward's name (selects a per-reward entry of ``reward_weights``).
        example: The example dict.
        weights: Weights bound by the caller (an instance or ``None``).

    Returns:
        A ``weights_type`` instance.
    """
    base = weights if weights is not None else weights_type()
    overrides = example.get("reward_weights") or {}
    if isinstance(overrides.get(name), Mapping):
        overrides = overrides[name]
    fields = {f.name for f in dataclasses.fields(weights_type)}
    chosen = {k: v for k, v in overrides.items() if k in fields}
    return dataclasses.replace(base, **chosen) if chosen else base


def bounds_of(low: float, high: float) -> tuple[float, float]:
    """A ``(low, high)`` range rounded to 10 decimals (so 3 * -0.1 reads -0.3)."""
    return round(low, 10), round(high, 10)


def clip(value: float, bounds: tuple[float, float]) -> float:
    """``value`` clipped to ``[low, high]`` (guards the documented range against rounding)."""
    low, high = bounds
    return float(min(max(value, low), high))


def gold_ids(example: Mapping[str, Any]) -> list[int]:
    """The example's gold ``[DOC i]`` numbers as ints."""
    return [int(i) for i in example.get("gold_ids") or []]


def documents(example: Mapping[str, Any]) -> dict[int, str]:
    """``{DOC number: text}`` from a dict (int or str keys; ``None`` values dropped) or a list."""
    docs = example.get("documents") or {}
    if isinstance(docs, Mapping):
        return {int(k): str(v) for k, v in docs.items() if v is not None}
    return {i: str(text) for i, text in enumerate(docs, start=1) if text is not None}


def fuzzy_normal(text: str | None) -> str:
    """Text prepared for fuzzy matching: ``rapidfuzz.utils.default_process`` (lower-case,
    non-alphanumerics to spaces), then whitespace collapsed."""
    return " ".join(default_process(text or "").split())


def set_f1(predicted: list[int], gold: list[int]) -> float:
    """F1 between two sets of ids; 1.0 when both are empty, 0.0 when only one is."""
    pred, ref = set(predicted), set(gold)
    if not pred or not ref:
        return float(pred == ref)
    hits = len(pred & ref)
    if hits == 0:
        return 0.0
    precision, recall = hits / len(pred), hits / len(ref)
    return 2 * precision * recall / (precision + recall)


def completion_text(completion: Any) -> str:
    """The text of a completion: a string, or chat messages (the assistant contents, joined).

    Message contents may be strings or lists of ``{"type": "text", "text": ...}`` parts.
    """
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        completion = [completion]
    parts: list[str] = []
    for message in completion:
        if not isinstance(message, Mapping):
            parts.append(str(message))
            continue
        if message.get("role", "assistant") != "assistant":
            continue
        content = message.get("content") or ""
        if isinstance(content, list):
            content = "".join(
                p.get("text", "") if isinstance(p, Mapping) else str(p) for p in content
            )
        parts.append(str(content))
    return "\n".join(parts)
