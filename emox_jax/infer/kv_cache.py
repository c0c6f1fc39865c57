"""The decoder's KV cache: an explicit pytree passed in and returned by the model (no mutable module state).

Layout (one cache for the whole scanned stack, so the layer scan slices it like its params):
- ``k``, ``v``: ``[L, B, S_max, K, H]`` keys (already rotated by RoPE) and values, in the compute dtype;
- ``valid``: ``[B, S_max]`` bool, True where a slot holds a real token (padding written during a prefill
  and never-written slots are False, so every attention mask is ``causal-by-slot & valid``);
- ``end``: ``[]`` int32, the next slot to write. All rows advance together: a call with ``T`` tokens writes
  slots ``end .. end+T-1`` of every row (padding included, marked invalid), so prompts of different lengths,
  left or right padded, share one write index and no per-row scatter is needed.

RoPE positions are independent of slots: by default a row's next position is its number of valid slots
(``valid.sum(-1)``), which is right for any padding. ``S_max`` must cover prompt + new tokens: writing past
the end is clamped by ``dynamic_update_slice`` (``generate`` sizes the cache so this never happens).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class KVCache:
    k: jax.Array      # [L, B, S_max, K, H]
    v: jax.Array      # [L, B, S_max, K, H]
    valid: jax.Array  # [B, S_max] bool
    end: jax.Array    # [] int32

    @property
    def max_length(self) -> int:
        return self.k.shape[2]

    def next_positions(self) -> jax.Array:
        """``[B]`` int32: the RoPE position the next real token of each row gets (its count of valid slots)."""
        return jnp.sum(self.valid, axis=-1).astype(jnp.int32)


def init_cache(num_layers: int, batch: int, max_length: int, num_kv_heads: int, head_dim: int,
               dtype=jnp.float32) -> KVCache:
    """An empty cache (all slots invalid, ``end = 0``)."""
    shape = (num_layers, batch, max_length, num_kv_heads, head_dim)
    return KVCache(k=jnp.zeros(shape, dtype), v=jnp.zeros(shape, dtype),
                   valid=jnp.zeros((batch, max_length), bool), end=jnp.zeros((), jnp.int32))


def write_layer(cache_k: jax.Array, cache_v: jax.Array, k: jax.Array, v: jax.Array, end: jax.Array):
    """Write ``k/v [B, T, K, H]`` into one layer's ``[B, S_max, K, H]`` buffers at slots ``end..end+T-1``."""
    start = (0, end, 0, 0)
    return (jax.lax.dynamic_update_slice(cache_k, k.astype(cache_k.dtype), start),
            jax.lax.dynamic_update_slice(cache_v, v.astype(cache_v.dtype), start))
