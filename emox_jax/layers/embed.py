"""Token embedding with a tied (or separate) unembedding whose logits come out in fp32."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn


class Embedder(nn.Module):
    """``embedding [V, D]`` (logical ``vocab, embed``), HF-style N(0, 0.02) init.

    ``__call__(ids [B, T]) -> [B, T, D]`` in ``dtype``; ``attend(x [B, T, D]) -> [B, T, V]`` fp32 logits
    against the same table (tied unembedding), accumulated in fp32 whatever the compute dtype.
    """

    vocab_size: int
    features: int
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    init_std: float = 0.02

    def setup(self):
        self.embedding = self.param(
            "embedding", nn.with_logical_partitioning(nn.initializers.normal(self.init_std), ("vocab", "embed")),
            (self.vocab_size, self.features), self.param_dtype)

    def __call__(self, ids: jax.Array) -> jax.Array:
        if not jnp.issubdtype(ids.dtype, jnp.integer):
            raise TypeError(f"Embedder expects integer token ids, got dtype {ids.dtype}")
        return jnp.take(self.embedding, ids, axis=0).astype(self.dtype)

    def attend(self, x: jax.Array) -> jax.Array:
        return jnp.einsum("btd,vd->btv", x.astype(self.dtype), self.embedding.astype(self.dtype),
                          preferred_element_type=jnp.float32)


class Unembed(nn.Module):
    """Separate output head ``kernel [D, V]`` (logical ``embed, vocab``), fp32 logits, no bias."""

    vocab_size: int
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", nn.with_logical_partitioning(nn.initializers.lecun_normal(),
                                                                   ("embed", "vocab")),
                            (x.shape[-1], self.vocab_size), self.param_dtype)
        return jnp.einsum("btd,dv->btv", x.astype(self.dtype), kernel.astype(self.dtype),
                          preferred_element_type=jnp.float32)
