"""Optimizer: optax AdamW with linear warmup + cosine decay, a weight-decay mask and regex freezing.

Generic over param trees: the LM main job and the P2E trainer (with its per-phase regexes) both build their
optimizer here from an ``OptimConfig``.

* Schedule: linear warmup from ``warmup_init_lr`` to ``lr`` over ``warmup_steps``, then cosine to ``min_lr`` at
  ``total_steps`` (``optax.warmup_cosine_decay_schedule``). The reference's scheduler never warms up and evaluates
  its cosine off range (``reference-architecture.md`` §8.2, defect 9); this is the intended behaviour.
* Weight decay: applied to every parameter except those whose path matches ``no_decay_regexes`` (default: leaves
  named ``bias`` or ``scale``, i.e. biases and norm scales). The reference decays params with ``ndim >= 2`` whose
  name lacks bias/ln/bn. We match on names instead of ndim because ``nn.scan`` stacks layers on a leading axis:
  a scanned bias is 2-D and an ndim rule would decay it. Like the reference, learned query tokens, position
  tables and embeddings are decayed.
* Freezing (big_vision style): a param trains iff its path fully matches one of ``trainable_regexes``. Frozen
  params go through ``optax.set_to_zero()`` inside ``optax.multi_transform``, so they get NO optimizer state
  (their slots are ``optax.MaskedNode``) and their gradients are dead code that XLA removes.

Paths are "/"-joined dict keys, e.g. ``decoder/layers/attn/q_proj/lora_a``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

TRAINABLE = "trainable"
FROZEN = "frozen"


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """AdamW + warmup/cosine + freezing. Built from a config's ``optim`` section with ``config_utils.from_config``."""

    lr: float = 3e-4  # peak learning rate, reached at the end of warmup
    min_lr: float = 3e-5  # learning rate at ``total_steps`` (end of the cosine)
    warmup_init_lr: float = 0.0  # learning rate at step 0 (the reference's ``warmup_lr``)
    warmup_steps: int = 100
    total_steps: int = 1000  # warmup included
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.05
    grad_clip_norm: float = 0.0  # 0 disables clipping (the reference does not clip)
    mu_dtype: str = ""  # dtype of Adam's first moment ("" = same as the param, e.g. "bfloat16" to save memory)
    trainable_regexes: tuple[str, ...] = (".*",)
    no_decay_regexes: tuple[str, ...] = (r"(.*/)?bias", r"(.*/)?scale")

    def validate(self) -> None:
        if self.lr <= 0 or self.min_lr < 0 or self.warmup_init_lr < 0:
            raise ValueError(f"learning rates must be positive: lr={self.lr}, min_lr={self.min_lr}, "
                             f"warmup_init_lr={self.warmup_init_lr}")
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr={self.min_lr} is larger than lr={self.lr}")
        if self.warmup_steps < 0 or self.total_steps <= self.warmup_steps:
            raise ValueError(f"need 0 <= warmup_steps ({self.warmup_steps}) < total_steps ({self.total_steps})")
        if not (0 <= self.b1 < 1 and 0 <= self.b2 < 1):
            raise ValueError(f"b1={self.b1} and b2={self.b2} must be in [0, 1)")
        if self.weight_decay < 0 or self.grad_clip_norm < 0:
            raise ValueError("weight_decay and grad_clip_norm must be >= 0")
        if self.mu_dtype not in ("", "float32", "bfloat16", "float16"):
            raise ValueError(f"mu_dtype={self.mu_dtype!r} must be '', 'float32', 'bfloat16' or 'float16'")
        if not self.trainable_regexes:
            raise ValueError("trainable_regexes is empty: nothing would train")
        for rx in (*self.trainable_regexes, *self.no_decay_regexes):
            try:
                re.compile(rx)
            except re.error as e:
                raise ValueError(f"bad regex {rx!r}: {e}") from None


def _key_name(k: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def path_str(path: Sequence[Any]) -> str:
    """A jax key path as a "/"-joined string (``('decoder', 'layers', 'q_proj', 'kernel')`` → ``decoder/...``)."""
    return "/".join(_key_name(k) for k in path)


def param_paths(params: Any) -> list[str]:
    """The "/"-joined path of every leaf, in tree order."""
    return [path_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]


def _matches(name: str, regexes: Sequence[str]) -> bool:
    return any(re.fullmatch(rx, name) for rx in regexes)


def trainable_mask(params: Any, trainable_regexes: Sequence[str]) -> Any:
    """A tree of bools: True where the param's path fully matches one of ``trainable_regexes``."""
    return jax.tree_util.tree_map_with_path(lambda p, _: _matches(path_str(p), trainable_regexes), params)


def decay_mask(params: Any, no_decay_regexes: Sequence[str]) -> Any:
    """A tree of bools: True where weight decay applies (the path matches none of ``no_decay_regexes``)."""
    return jax.tree_util.tree_map_with_path(lambda p, _: not _matches(path_str(p), no_decay_regexes), params)


def check_trainable(params: Any, cfg: OptimConfig) -> list[str]:
    """The trainable paths; raises ValueError when no param matches, or a regex matches nothing (a typo)."""
    names = param_paths(params)
    unused = [rx for rx in cfg.trainable_regexes if not any(re.fullmatch(rx, n) for n in names)]
    if unused:
        raise ValueError(f"optim.trainable_regexes {unused} match no parameter; e.g. params are {names[:5]}")
    return [n for n in names if _matches(n, cfg.trainable_regexes)]


def lr_schedule(cfg: OptimConfig) -> optax.Schedule:
    """Linear warmup ``warmup_init_lr → lr`` over ``warmup_steps``, cosine to ``min_lr`` at ``total_steps``."""
    return optax.warmup_cosine_decay_schedule(
        init_value=cfg.warmup_init_lr, peak_value=cfg.lr, warmup_steps=cfg.warmup_steps,
        decay_steps=cfg.total_steps, end_value=cfg.min_lr)


def make_optimizer(cfg: OptimConfig) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """``(tx, schedule)``: AdamW (+ optional global-norm clipping) on trainable params, zero updates elsewhere."""
    schedule = lr_schedule(cfg)
    mu_dtype = jnp.dtype(cfg.mu_dtype) if cfg.mu_dtype else None
    adamw = optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay,
                        mu_dtype=mu_dtype, mask=lambda p: decay_mask(p, cfg.no_decay_regexes))
    # Clipping sits inside the trainable branch, so the clipped norm is over trainable params only.
    train_tx = optax.chain(optax.clip_by_global_norm(cfg.grad_clip_norm), adamw) if cfg.grad_clip_norm else adamw

    def labels(params):
        return jax.tree.map(lambda t: TRAINABLE if t else FROZEN, trainable_mask(params, cfg.trainable_regexes))

    tx = optax.multi_transform({TRAINABLE: train_tx, FROZEN: optax.set_to_zero()}, labels)
    return tx, schedule


def trainable_global_norm(grads: Any, cfg: OptimConfig) -> jax.Array:
    """Global L2 norm of the gradients of trainable params only (what clipping sees)."""
    mask = trainable_mask(grads, cfg.trainable_regexes)
    kept = jax.tree.map(lambda g, m: g if m else jnp.zeros((), g.dtype), grads, mask)
    return optax.global_norm(kept)
