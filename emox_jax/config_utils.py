"""Config validation: ml_collections ConfigDicts -> typed, frozen dataclasses with clear errors.

Models take frozen dataclasses (hashable, so they can be Linen attributes); configs are ml_collections files.
`from_config` is the bridge: an unknown key names the key, where it was found and the valid keys; a value of
the wrong type names the field and both types.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config key is unknown, missing, of the wrong type, or inconsistent with another key."""


def _as_mapping(cfg: Any) -> Mapping[str, Any]:
    if hasattr(cfg, "to_dict"):
        return cfg.to_dict()
    if dataclasses.is_dataclass(cfg):
        return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, Mapping):
        return cfg
    raise ConfigError(f"expected a mapping or ConfigDict, got {type(cfg).__name__}")


def from_config(cls: type[T], cfg: Any, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``cfg`` (ConfigDict / dict / dataclass), validating every key.

    Nested dataclass fields are built recursively, with ``where`` extended (``model.decoder.num_layers``).
    Tuples given as lists are converted. Unknown keys raise ConfigError with a close-match suggestion.
    """
    data = dict(_as_mapping(cfg))
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, list(fields), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown config key {where}.{key}{hint}; valid keys: {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints.get(name)
        if dataclasses.is_dataclass(hint) and not dataclasses.is_dataclass(value):
            value = from_config(hint, value, f"{where}.{name}")
        elif isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        _check_type(value, hint, f"{where}.{name}")
        kwargs[name] = value
    try:
        obj = cls(**kwargs)
    except TypeError as e:  # a required field is missing
        raise ConfigError(f"{where}: {e}") from None
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except (AssertionError, ValueError) as e:
            raise ConfigError(f"{where}: {e}") from None
    return obj


def _check_type(value: Any, hint: Any, where: str) -> None:
    """Shallow type check for scalar fields (int/float/bool/str); composite hints are not checked."""
    if hint in (int, float, bool, str):
        ok = isinstance(value, hint)
        if hint is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if hint is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok:
            raise ConfigError(f"{where} must be {hint.__name__}, got {type(value).__name__} {value!r}")


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass config as a plain (JSON-able) dict, for checkpoint metadata."""
    return dataclasses.asdict(obj)
