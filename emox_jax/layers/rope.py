"""Rotary position embeddings (rotate-half convention, as in HF Llama/Qwen2).

Positions are explicit ``[B, T]`` integers so that packed sequences (positions restart per segment), left or
right padding and KV-cache decoding (positions continue from the cache) all use the same code.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def rope_inv_freq(head_dim: int, theta: float) -> jax.Array:
    """``[head_dim // 2]`` inverse frequencies ``theta ** (-2i / head_dim)`` in fp32."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head_dim, got {head_dim}")
    return 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))


def rope_cos_sin(positions: jax.Array, head_dim: int, theta: float) -> tuple[jax.Array, jax.Array]:
    """``positions [B, T]`` -> ``(cos, sin)`` each ``[B, T, head_dim]`` in fp32 (the two halves repeat)."""
    freqs = positions.astype(jnp.float32)[..., None] * rope_inv_freq(head_dim, theta)  # [B, T, H/2]
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(emb), jnp.sin(emb)


def _rotate_half(x: jax.Array) -> jax.Array:
    x1, x2 = jnp.split(x, 2, axis=-1)
    return jnp.concatenate([-x2, x1], axis=-1)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotate ``x [B, T, N, H]`` by ``cos/sin [B, T, H]``; the result keeps ``x.dtype``.

    cos/sin are cast to ``x.dtype`` first, which is what HF does (so bf16 runs round the same way).
    """
    cos = cos[:, :, None, :].astype(x.dtype)
    sin = sin[:, :, None, :].astype(x.dtype)
    return x * cos + _rotate_half(x) * sin
