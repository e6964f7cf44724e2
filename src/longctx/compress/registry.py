"""The registry of compression methods: exact names to dataclasses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from longctx.compress.base import CompressionMethod

METHODS: dict[str, type[CompressionMethod]] = {}


def register_method(
    name: str,
) -> Callable[[type[CompressionMethod]], type[CompressionMethod]]:
    """Class decorator registering a :class:`CompressionMethod` under ``name``.

    Raises:
        ValueError: ``name`` is already registered.
    """

    def decorate(cls: type[CompressionMethod]) -> type[CompressionMethod]:
        if name in METHODS:
            raise ValueError(f"compression method {name!r} registered twice")
        cls.name = name
        METHODS[name] = cls
        return cls

    return decorate


def make_method(name: str, ratio: float = 0.0, **kwargs: Any) -> CompressionMethod:
    """Instantiate a registered method.

    Args:
        name: Registered name (see ``METHODS``).
        ratio: Fraction of KV pairs to remove, in ``[0, 1)``.
        **kwargs: Method-specific dataclass fields (e.g. ``window_size`` for snapkv).

    Raises:
        KeyError: Unknown name (the message lists the known ones).
    """
    if name not in METHODS:
        raise KeyError(f"unknown compression method {name!r}; known: {', '.join(METHODS)}")
    return METHODS[name](ratio=ratio, **kwargs)
