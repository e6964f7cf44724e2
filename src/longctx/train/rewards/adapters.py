"""Adapters: bound weights, per-component scores, and TRL ``GRPOTrainer`` reward functions.

TRL calls a reward function as ``fn(prompts=..., completions=..., completion_ids=..., **columns)``
where every dataset column (``answers``, ``gold_ids``, ``documents``, ...) is a list aligned with
the completions, plus ``trainer_state``, ``log_extra`` and ``log_metric``. Completions are
strings, or chat messages (``[{"role": "assistant", "content": ...}]``) for conversational
datasets. Nothing here imports TRL.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from longctx.train.rewards.base import SPECS, NoWeights, RewardSpec, completion_text

# Keyword arguments TRL adds that are not dataset columns.
_TRL_EXTRAS = frozenset(
    {"prompts", "completion_ids", "trainer_state", "log_extra", "log_metric", "environments"}
)


def _spec(name: str) -> RewardSpec:
    if name not in SPECS:
        raise KeyError(f"unknown reward {name!r}; choose from {', '.join(SPECS)}")
    return SPECS[name]


def _weights(name: str, weights: dict[str, Any]) -> Any:
    """The weights dataclass of ``name`` with ``weights`` applied (unknown keys raise)."""
    spec = _spec(name)
    try:
        return spec.weights_type(**weights)
    except TypeError as error:
        raise TypeError(f"bad weights for reward {name!r}: {error}") from None


def _kw(name: str, weights: dict[str, Any]) -> dict[str, Any]:
    """``{"weights": ...}`` for the call, or ``{}`` for a reward registered without weights."""
    if _spec(name).weights_type is NoWeights:
        if weights:
            raise TypeError(f"reward {name!r} takes no weights")
        return {}
    return {"weights": _weights(name, weights)}


def make_reward(name: str, **weights: Any) -> Callable[[str, dict[str, Any]], float]:
    """The reward ``name`` with some weights bound (``functools.partial`` style).

    Args:
        name: A registered reward.
        **weights: Fields of the reward's weights dataclass; ``example["reward_weights"]``
            still overrides them per example.

    Returns:
        A function ``(completion, example) -> float``.

    Raises:
        KeyError: Unknown reward. TypeError: Unknown weight name.
    """
    bound = functools.partial(_spec(name).fn, **_kw(name, weights))
    functools.update_wrapper(bound, _spec(name).fn)
    return bound


def reward_range(name: str, **weights: Any) -> tuple[float, float]:
    """The ``[min, max]`` range of reward ``name`` with the given weights (defaults otherwise)."""
    return _weights(name, weights).bounds()


def reward_components(
    name: str, completion: Any, example: dict[str, Any], **weights: Any
) -> dict[str, float]:
    """Each component of reward ``name`` for one completion, for per-component logging.

    Args:
        name: A registered reward.
        completion: A string or chat messages.
        example: The example dict.
        **weights: Weight overrides, as in :func:`make_reward`.

    Returns:
        The raw components (e.g. ``ids_f1``, ``answer``) and the total under ``"reward"``.
    """
    spec = _spec(name)
    text = completion_text(completion)
    w = _kw(name, weights)
    if spec.components is None:
        return {"reward": spec.fn(text, example, **w)}
    return spec.components(text, example, **w)


def as_trl_reward(
    name: str, judge: Any = None, log_components: bool = True, **weights: Any
) -> Callable[..., list[float]]:
    """A TRL ``GRPOTrainer`` reward function for reward ``name``.

    Args:
        name: A registered reward.
        judge: Judge object put into each example as ``example["judge"]`` (for ``"judge"``).
        log_components: Report the batch mean of each component through TRL's ``log_metric``
            (as ``"{name}/{component}"``) when TRL passes it.
        **weights: Weight overrides, as in :func:`make_reward`.

    Returns:
        ``fn(prompts, completions, **kwargs) -> list[float]`` named ``reward_{name}``. Judge
        failures of all calls accumulate in ``fn.judge_failures``.
    """
    spec = _spec(name)
    bound = _kw(name, weights)
    failures: list[dict[str, Any]] = []

    def reward(prompts: Any = None, completions: Sequence[Any] = (), **kwargs: Any) -> list[float]:
        n = len(completions)
        columns = {k: v for k, v in kwargs.items() if k not in _TRL_EXTRAS}
        scores: list[float] = []
        parts: list[dict[str, float]] = []
        for i, completion in enumerate(completions):
            example = {
                k: v[i] if isinstance(v, list | tuple) and len(v) == n else v
                for k, v in columns.items()
            }
            if judge is not None:
                example["judge"] = judge
            text = completion_text(completion)
            if spec.components is not None:
                part = spec.components(text, example, **bound)
                parts.append(part)
                scores.append(float(part["reward"]))
            else:
                scores.append(float(spec.fn(text, example, **bound)))
            failures.extend(example.get("judge_failures", []))
        log_metric = kwargs.get("log_metric")
        if log_components and callable(log_metric) and parts:
            for key in parts[0]:
                if key != "reward":
                    log_metric(f"{name}/{key}", sum(p[key] for p in parts) / len(parts))
        return scores

    reward.__name__ = reward.__qualname__ = f"reward_{name}"
    reward.judge_failures = failures  # type: ignore[attr-defined]
    return reward
