"""Dense layers whose params carry logical axis names (so the one rules table can shard them)."""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
from flax import linen as nn

default_kernel_init = nn.initializers.lecun_normal()


class _FlatInitPartitioned(nn.LogicallyPartitioned):
    """A logical-partitioning box that tolerates ``nn.DenseGeneral``'s flat kernel init.

    DenseGeneral initialises its kernel as ``[prod(in), prod(out)]`` and reshapes the *boxed* value after
    unboxing it; under an active mesh + rules, flax would apply the N-name constraint to the 2-D value and
    fail ("only valid for values of rank at least N") at init and at every apply (flax re-runs the init under
    ``eval_shape`` to check param shapes). The constraint is skipped only while the ranks differ.
    """

    def unbox(self, apply_constraint=True):
        if len(self.names) != jnp.ndim(self.value):
            return self.value
        return super().unbox(apply_constraint)


def _flat_safe_partitioning(init_fn, names):
    def init(*args, **kwargs):
        return _FlatInitPartitioned(init_fn(*args, **kwargs), tuple(names))
    return init


def dense(features: int, axes: Sequence[str | None], *, use_bias: bool = True, dtype=jnp.float32,
          param_dtype=jnp.float32, kernel_init=default_kernel_init, bias_init=nn.initializers.zeros,
          name: str | None = None) -> nn.Dense:
    """``nn.Dense`` with kernel logical axes ``axes`` (in, out) and bias axes ``(axes[-1],)``."""
    return nn.Dense(features, use_bias=use_bias, dtype=dtype, param_dtype=param_dtype,
                    kernel_init=nn.with_logical_partitioning(kernel_init, tuple(axes)),
                    bias_init=nn.with_logical_partitioning(bias_init, (axes[-1],)), name=name)


def dense_general(features, axes: Sequence[str | None], *, axis=-1, use_bias: bool = True, dtype=jnp.float32,
                  param_dtype=jnp.float32, kernel_init=default_kernel_init, bias_init=nn.initializers.zeros,
                  name: str | None = None) -> nn.DenseGeneral:
    """``nn.DenseGeneral`` with kernel logical axes ``axes`` (input dims then output dims).

    The bias gets the output dims' names.
    """
    n_out = len(features) if isinstance(features, (tuple, list)) else 1
    return nn.DenseGeneral(features, axis=axis, use_bias=use_bias, dtype=dtype, param_dtype=param_dtype,
                           kernel_init=_flat_safe_partitioning(kernel_init, tuple(axes)),
                           bias_init=_flat_safe_partitioning(bias_init, tuple(axes[-n_out:])), name=name)
