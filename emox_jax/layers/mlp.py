"""SwiGLU feed-forward (Qwen2/Llama): ``down(silu(gate(x)) * up(x))``, each projection optionally LoRA'd."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from emox_jax.layers.lora import LoRADenseGeneral
from emox_jax.sharding import constrain


class SwiGLUMLP(nn.Module):
    """``[B, T, D] -> [B, T, D]`` through ``intermediate_size`` hidden units, no biases.

    Params ``gate_proj``/``up_proj`` kernels ``[D, F]`` (logical ``embed, mlp``), ``down_proj`` ``[F, D]``.
    Projections named in ``lora_targets`` get a LoRA branch of ``lora_rank``.
    """

    intermediate_size: int
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    lora_rank: int = 0
    lora_alpha: float = 32.0
    lora_dropout: float = 0.0
    lora_targets: Sequence[str] = ()

    def _proj(self, name, features, axes):
        rank = self.lora_rank if name in self.lora_targets else 0
        return LoRADenseGeneral(features, axes, use_bias=False, rank=rank, alpha=self.lora_alpha,
                                dropout=self.lora_dropout, dtype=self.dtype, param_dtype=self.param_dtype,
                                name=name)

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        d = x.shape[-1]
        gate = self._proj("gate_proj", self.intermediate_size, ("embed", "mlp"))(x, deterministic)
        up = self._proj("up_proj", self.intermediate_size, ("embed", "mlp"))(x, deterministic)
        h = constrain(nn.silu(gate) * up, ("batch", "length", "act_mlp"))
        return self._proj("down_proj", d, ("mlp", "embed"))(h, deterministic)
