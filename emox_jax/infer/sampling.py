"""Next-token samplers over fp32 logits ``[B, V]``: greedy, temperature, top-k, top-p (nucleus).

Order as in transformers' logits warpers: temperature, then top-k, then top-p, then a categorical draw.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """``greedy=True`` (or ``temperature == 0``) takes the argmax; ``top_k=0`` and ``top_p=1`` switch those off.

    Hashable, so it can be a static argument of a jitted generate function.
    """

    greedy: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def validate(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"SamplingConfig.temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"SamplingConfig.top_k must be >= 0, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"SamplingConfig.top_p must be in (0, 1], got {self.top_p}")

    @property
    def is_greedy(self) -> bool:
        return self.greedy or self.temperature == 0.0


def top_k_filter(logits: jax.Array, k: int) -> jax.Array:
    """Keep the ``k`` largest logits per row (ties at the k-th value are kept), the rest -> -inf."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = jax.lax.top_k(logits, k)[0][..., -1:]
    return jnp.where(logits < kth, -jnp.inf, logits)


def top_p_filter(logits: jax.Array, p: float) -> jax.Array:
    """Keep the smallest set of most-likely tokens whose probability mass reaches ``p`` (at least one)."""
    if p >= 1.0:
        return logits
    sorted_logits = jnp.sort(logits, axis=-1)[..., ::-1]
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    mass_before = jnp.cumsum(probs, axis=-1) - probs  # mass of strictly more likely tokens
    keep = mass_before < p
    keep = keep.at[..., 0].set(True)
    # The smallest kept logit is the threshold (ties with it are kept too).
    threshold = jnp.min(jnp.where(keep, sorted_logits, jnp.inf), axis=-1, keepdims=True)
    return jnp.where(logits < threshold, -jnp.inf, logits)


def sample_logits(rng: jax.Array, logits: jax.Array, config: SamplingConfig) -> jax.Array:
    """``logits [B, V]`` -> token ids ``[B]`` int32."""
    logits = logits.astype(jnp.float32)
    if config.is_greedy:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = logits / config.temperature
    logits = top_k_filter(logits, config.top_k)
    logits = top_p_filter(logits, config.top_p)
    return jax.random.categorical(rng, logits, axis=-1).astype(jnp.int32)
