"""Helpers shared by every config file (LM job now, P2E phases later).

A config file defines ``get_config(arg)`` returning an ``ml_collections.ConfigDict``; ``arg`` is a comma list of
words (``"tiny"``, ``"phase3,tiny"``) parsed by ``parse_arg``. Sections that map onto a typed dataclass
(``model``, ``optim``, ``mesh``, ``loop``) are validated with ``emox_jax.config_utils.from_config``: an unknown key
names the key (with a close-match suggestion) and a wrong type names the field.

Command line: ``--config=configs/lm.py:tiny --config.optim.lr=1e-3`` (absl + ``config_flags``; an override of a
key that does not exist is rejected by ml_collections, naming the key).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

from emox_jax.config_utils import ConfigError, from_config
from emox_jax.train.optim import OptimConfig


def parse_arg(arg: str | None, choices: Mapping[str, Sequence[str]],
              defaults: Mapping[str, str]) -> dict[str, str]:
    """``"phase3,tiny"`` → ``{"phase": "phase3", "preset": "tiny"}``, each word matched against ``choices``.

    Words may come in any order; a group not named takes its default; an unknown word, or two words of the same
    group, raise ConfigError listing the valid words.
    """
    out: dict[str, str] = {}
    for word in [w.strip() for w in (arg or "").split(",") if w.strip()]:
        group = next((g for g, opts in choices.items() if word in opts), None)
        if group is None:
            valid = {g: list(opts) for g, opts in choices.items()}
            raise ConfigError(f"get_config: unknown word {word!r} in {arg!r}; valid words: {valid}")
        if group in out:
            raise ConfigError(f"get_config: {arg!r} names two {group}s ({out[group]!r} and {word!r})")
        out[group] = word
    for group, default in defaults.items():
        out.setdefault(group, default)
    return out


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """Device mesh over ``('data', 'fsdp', 'tensor')``; one ``-1`` entry takes the remaining devices."""

    shape: tuple[int, ...] = (1, -1, 1)
    rules: tuple[tuple[str, Any], ...] = ()  # logical-axis rule overrides, e.g. (("vocab", None),)

    def validate(self) -> None:
        if len(self.shape) != 3:
            raise ValueError(f"shape {self.shape} must have 3 entries (data, fsdp, tensor)")
        if self.shape.count(-1) > 1 or any(s == 0 or s < -1 for s in self.shape):
            raise ValueError(f"shape {self.shape}: entries must be positive, with at most one -1")


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """The training loop: global batch, sequence length, step count, intervals and output folder."""

    batch_size: int = 8  # global batch (sequences per step, over all devices)
    seq_len: int = 64
    steps: int = 300
    log_every: int = 25
    ckpt_every: int = 100  # 0: save only at the end
    keep_ckpts: int = 2
    async_ckpt: bool = True
    seed: int = 0
    workdir: str = "runs/lm_tiny"

    def validate(self) -> None:
        for name in ("batch_size", "seq_len", "steps", "log_every", "keep_ckpts"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.ckpt_every < 0:
            raise ValueError(f"ckpt_every must be >= 0, got {self.ckpt_every}")


def _section(cls: type, what: str, overrides: dict[str, Any]) -> ml_collections.ConfigDict:
    """A config section with every field of dataclass ``cls`` (defaults, then ``overrides``)."""
    fields = {f.name: f.default for f in dataclasses.fields(cls)}
    bad = [k for k in overrides if k not in fields]
    if bad:
        raise ConfigError(f"{what}_section: unknown {what} keys {bad}; valid: {sorted(fields)}")
    fields.update(overrides)
    return ml_collections.ConfigDict(fields)


def optim_section(**overrides: Any) -> ml_collections.ConfigDict:
    """The ``optim`` section with every ``OptimConfig`` field (defaults, then ``overrides``)."""
    return _section(OptimConfig, "optim", overrides)


def mesh_section(shape: Sequence[int] = (1, -1, 1)) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({"shape": tuple(shape), "rules": ()})


def loop_section(**overrides: Any) -> ml_collections.ConfigDict:
    """The ``loop`` section with every ``LoopConfig`` field (defaults, then ``overrides``)."""
    return _section(LoopConfig, "loop", overrides)


def dataclass_section(obj: Any) -> ml_collections.ConfigDict:
    """A frozen dataclass (e.g. a model preset) as a ConfigDict section. ``None`` values get a placeholder
    that accepts a string override later (``attention_impl``)."""
    d = dataclasses.asdict(obj)
    cfg = ml_collections.ConfigDict()
    for k, v in d.items():
        if v is None:
            setattr(cfg, k, ml_collections.config_dict.placeholder(str))
        else:
            setattr(cfg, k, v)
    return cfg


def check_sections(config: ml_collections.ConfigDict, allowed: Sequence[str], where: str = "config") -> None:
    """Raise ConfigError naming any top-level key of ``config`` outside ``allowed``."""
    import difflib

    for key in config.keys():
        if key not in allowed:
            close = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown config key {where}.{key}{hint}; valid keys: {sorted(allowed)}")


def build_mesh_config(section: Any) -> MeshConfig:
    return from_config(MeshConfig, section, where="mesh")


def build_loop_config(section: Any) -> LoopConfig:
    return from_config(LoopConfig, section, where="loop")


def build_optim_config(section: Any) -> OptimConfig:
    return from_config(OptimConfig, section, where="optim")


def check_batch_divisible(batch_size: int, mesh_shape: Sequence[int], where: str = "loop.batch_size") -> None:
    """The global batch is sharded over ``data × fsdp``; it must divide evenly."""
    shards = math.prod(mesh_shape[:2])
    if batch_size % shards:
        raise ConfigError(f"{where}={batch_size} is not divisible by data×fsdp = {mesh_shape[0]}×{mesh_shape[1]} "
                          f"= {shards} (mesh shape {tuple(mesh_shape)})")


def lock(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Lock the structure so an override of a key that does not exist fails (values stay editable)."""
    config.lock()
    return config
