"""RMSNorm (Qwen2) and a LayerNorm factory; both normalise in fp32 whatever the compute dtype."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn


class RMSNorm(nn.Module):
    """``x * rsqrt(mean(x^2) + eps) * scale`` over the last axis, ``[..., D] -> [..., D]``.

    Computed in fp32 and cast back to ``dtype`` (HF Qwen2RMSNorm does the same), scale axis ``norm``.
    """

    eps: float = 1e-6
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones, ("norm",)),
                           (x.shape[-1],), self.param_dtype)
        xf = x.astype(jnp.float32)
        y = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + self.eps)
        return (y.astype(self.dtype) * scale.astype(self.dtype)).astype(self.dtype)


def layer_norm(eps: float = 1e-5, *, dtype=jnp.float32, param_dtype=jnp.float32, use_bias: bool = True,
               use_scale: bool = True, name: str | None = None) -> nn.LayerNorm:
    """``nn.LayerNorm`` with logically-partitioned scale/bias (axis ``norm``), statistics in fp32."""
    return nn.LayerNorm(epsilon=eps, dtype=dtype, param_dtype=param_dtype, use_bias=use_bias,
                        use_scale=use_scale, force_float32_reductions=True,
                        scale_init=nn.with_logical_partitioning(nn.initializers.ones, ("norm",)),
                        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("norm",)), name=name)
