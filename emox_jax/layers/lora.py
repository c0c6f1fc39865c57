"""LoRA dense layer (peft-style) and pure functions that merge / unmerge LoRA factors in a param tree.

A targeted projection holds its frozen base ``kernel`` (and ``bias``) beside two trainable factors:
``lora_a [*in_dims, r]`` (Kaiming-uniform, as peft: U(-1/sqrt(fan_in), 1/sqrt(fan_in))) and
``lora_b [r, *out_dims]`` (zeros), so a fresh adapter is the identity. Output:
``x @ kernel + bias + (alpha / r) * dropout(x) @ lora_a @ lora_b``.

Freezing is the optimizer's job (blueprint: path regexes); every LoRA param name starts with ``lora_`` so a
regex like ``.*lora_.*`` selects exactly the adapters. LoRA factors are always stored in fp32 (the reference
keeps adapters fp32 over an fp16 base).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from emox_jax.layers.dense import default_kernel_init


def _tuple(x) -> tuple[int, ...]:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


class LoRADenseGeneral(nn.Module):
    """A DenseGeneral over the trailing ``len(in_axes)`` input dims with an optional LoRA branch.

    ``x [..., *in_dims] -> [..., *features]``. ``axes`` are the kernel's logical names (input dims then output
    dims). ``rank == 0`` gives a plain dense layer with the same param names (``kernel``, ``bias``).
    Params: ``kernel [*in_dims, *features]``, ``bias [*features]``, and with ``rank > 0`` ``lora_a [*in_dims, r]``
    (logical ``(*in_axes, 'lora_rank')``), ``lora_b [r, *features]`` (``('lora_rank', *out_axes)``).
    """

    features: int | Sequence[int]
    axes: Sequence[str | None]
    n_in: int = 1  # how many trailing input dims are contracted
    use_bias: bool = True
    rank: int = 0
    alpha: float = 32.0
    dropout: float = 0.0
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    kernel_init: Any = default_kernel_init

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        features = _tuple(self.features)
        in_dims = tuple(x.shape[-self.n_in:])
        axes = tuple(self.axes)
        if len(axes) != self.n_in + len(features):
            raise ValueError(f"{self.name}: axes {axes} must name {self.n_in} input + {len(features)} output dims")
        in_axes, out_axes = axes[:self.n_in], axes[self.n_in:]
        n_in_ids = tuple(range(self.n_in))
        # Initialise with a flattened fan-in/fan-out so [D, N, H] kernels get the same scale as [D, N*H].
        kernel = self.param("kernel", nn.with_logical_partitioning(self._flat_init(self.kernel_init, len(in_dims)),
                                                                   axes), in_dims + features, self.param_dtype)
        contract = (tuple(range(x.ndim - self.n_in, x.ndim)), n_in_ids)
        y = jax.lax.dot_general(x.astype(self.dtype), kernel.astype(self.dtype), (contract, ((), ())))
        if self.use_bias:
            bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros, out_axes), features,
                              self.param_dtype)
            y = y + bias.astype(self.dtype)
        if self.rank > 0:
            a_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform", in_axis=n_in_ids,
                                                      out_axis=-1)
            lora_a = self.param("lora_a", nn.with_logical_partitioning(a_init, in_axes + ("lora_rank",)),
                                in_dims + (self.rank,), jnp.float32)
            lora_b = self.param("lora_b", nn.with_logical_partitioning(nn.initializers.zeros,
                                                                       ("lora_rank",) + out_axes),
                                (self.rank,) + features, jnp.float32)
            h = nn.Dropout(self.dropout)(x, deterministic=deterministic) if self.dropout > 0 else x
            h = jax.lax.dot_general(h.astype(self.dtype), lora_a.astype(self.dtype), (contract, ((), ())))
            h = jnp.tensordot(h, lora_b.astype(self.dtype), axes=1)
            y = y + (self.alpha / self.rank) * h
        return y.astype(self.dtype)

    @staticmethod
    def _flat_init(init, n_in: int):
        def f(key, shape, dtype=jnp.float32):
            flat = (int(np.prod(shape[:n_in])), int(np.prod(shape[n_in:])))
            return init(key, flat, dtype).reshape(shape)
        return f


# ---------------------------------------------------------------------------------------------- param trees

def _lora_delta(kernel, a, b, scale):
    """``scale * A @ B`` shaped like ``kernel``; leading stacked (scanned ``layers``) axes are batched."""
    xp = jnp if isinstance(kernel, jax.Array) else np
    lead = a.ndim + b.ndim - 2 - kernel.ndim
    if lead < 0 or a.shape[:lead] != b.shape[:lead] or a.shape[lead:-1] + b.shape[lead + 1:] != kernel.shape[lead:]:
        raise ValueError(f"LoRA factors {a.shape} x {b.shape} do not fit kernel {kernel.shape}")
    a32 = xp.asarray(a, xp.float32)
    b32 = xp.asarray(b, xp.float32)
    a2 = a32.reshape(a.shape[:lead] + (-1, a.shape[-1]))
    b2 = b32.reshape(b.shape[:lead + 1] + (-1,))
    delta = xp.matmul(a2, b2).reshape(kernel.shape)
    return (scale * delta)


def _walk(tree, fn, path=()):
    if isinstance(tree, Mapping):
        if "lora_a" in tree and "lora_b" in tree and "kernel" in tree:
            return fn(dict(tree), path)
        return {k: _walk(v, fn, path + (k,)) for k, v in tree.items()}
    return tree


def lora_scale(config) -> float:
    return float(config.lora_alpha) / float(config.lora_rank)


def merge_lora(params: Mapping, config, *, keep_factors: bool = False) -> dict:
    """Fold every LoRA branch into its base kernel: ``kernel + (alpha/r) * lora_a @ lora_b``.

    ``config`` needs ``lora_rank``/``lora_alpha``. By default the factors are removed, giving a tree for the
    same model with ``lora_rank=0`` (export, fast inference). ``keep_factors=True`` keeps them (so
    ``unmerge_lora`` can restore the original); such a tree must not be fed to a LoRA-enabled model, which
    would add the branch twice. Works on plain (unboxed) trees, numpy or jax arrays, scanned or not.
    """
    if config.lora_rank <= 0:
        return _walk(params, lambda node, path: node)
    scale = lora_scale(config)

    def fn(node, path):
        k = node["kernel"]
        node["kernel"] = (k + _lora_delta(k, node["lora_a"], node["lora_b"], scale)).astype(k.dtype)
        if not keep_factors:
            node.pop("lora_a")
            node.pop("lora_b")
        return node

    return _walk(params, fn)


def unmerge_lora(params: Mapping, config) -> dict:
    """Inverse of ``merge_lora(..., keep_factors=True)``: subtract ``(alpha/r) * lora_a @ lora_b`` again."""
    scale = lora_scale(config)

    def fn(node, path):
        k = node["kernel"]
        node["kernel"] = (k - _lora_delta(k, node["lora_a"], node["lora_b"], scale)).astype(k.dtype)
        return node

    return _walk(params, fn)


def lora_param_count(params: Mapping) -> int:
    """Number of LoRA parameters (leaves whose name starts with ``lora_``) in a param tree."""
    total = 0
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        if any(str(getattr(p, "key", "")).startswith("lora_") for p in path):
            total += int(np.prod(leaf.shape))
    return total
