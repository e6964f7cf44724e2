"""Typed configs loaded from YAML with ``key=value`` overrides; unknown keys are errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

T = TypeVar("T", bound=BaseModel)


class ConfigError(ValueError):
    """A config file or override that does not fit the config's schema."""


def parse_override(item: str) -> tuple[str, Any]:
    """``"lengths=[512, 1024]"`` -> ``("lengths", [512, 1024])`` (the value is parsed as YAML)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not key=value")
    key, value = item.split("=", 1)
    return key.strip(), yaml.safe_load(value) if value.strip() else None


def load_config(
    cls: type[T], path: str | Path | None = None, overrides: list[str] = (), **values: Any
) -> T:
    """Build a config from a YAML file, then keyword values, then ``key=value`` overrides.

    Args:
        cls: A pydantic model with ``extra="forbid"``.
        path: Optional YAML file (a mapping of field names).
        overrides: ``key=value`` strings; the value is parsed as YAML.
        **values: Values that take precedence over the file (e.g. from CLI options that were set).

    Raises:
        ConfigError: Naming the file and field for unknown keys or bad values.
    """
    data: dict[str, Any] = {}
    source = "overrides"
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"config file not found: {p}")
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"{p}: expected a mapping of config keys, got {type(loaded).__name__}"
            )
        data.update(loaded)
        source = str(p)
    data.update({k: v for k, v in values.items() if v is not None})
    for item in overrides:
        key, value = parse_override(item)
        data[key] = value
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"field '{'.'.join(str(x) for x in e['loc'])}': {e['msg']}" for e in err.errors()
        )
        raise ConfigError(f"{source}: {problems}") from None


def dump_config(config: BaseModel, path: str | Path) -> None:
    """Write a config as YAML (the run folder's ``config.yaml``)."""
    Path(path).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
