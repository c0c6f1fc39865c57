"""Projectors from adapter widths into the LM width, and PyTorch-default initialisers they share.

The reference builds every adapter projection as a plain ``nn.Linear`` (``video_proj`` 768→1536,
``audio_llama_proj`` 768→1536, ``multi_llama_proj`` 512→1536) or a small MLP (``face_proj``
256→768→GELU→Dropout→1536). Plain ``nn.Linear`` uses Kaiming-uniform(a=√5) for the weight, which is
U(-1/√fan_in, 1/√fan_in), and the same bound for the bias (reference-architecture.md §2.10); we reproduce that.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import linen as nn

from emox_jax.layers.dense import dense


def torch_linear_kernel_init(fan_in_axes: int = 1):
    """PyTorch ``nn.Linear`` weight init on a Flax kernel: U(-1/√fan_in, 1/√fan_in).

    ``fan_in_axes``: how many leading kernel dims are inputs (2 for an ``[heads, head_dim, out]`` kernel).
    """

    def init(key, shape, dtype=jnp.float32):
        fan_in = math.prod(shape[:fan_in_axes])
        bound = 1.0 / math.sqrt(fan_in)
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def torch_linear_bias_init(fan_in: int):
    """PyTorch ``nn.Linear`` bias init: U(-1/√fan_in, 1/√fan_in) (the bias init needs the input width)."""

    def init(key, shape, dtype=jnp.float32):
        bound = 1.0 / math.sqrt(fan_in)
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def torch_dense(features: int, fan_in: int, axes=("mlp", "embed"), *, use_bias: bool = True, dtype=jnp.float32,
                param_dtype=jnp.float32, name: str | None = None) -> nn.Dense:
    """A logically partitioned ``nn.Dense`` initialised like PyTorch's ``nn.Linear(fan_in, features)``."""
    return dense(features, axes, use_bias=use_bias, dtype=dtype, param_dtype=param_dtype,
                 kernel_init=torch_linear_kernel_init(), bias_init=torch_linear_bias_init(fan_in), name=name)


@dataclasses.dataclass(frozen=True)
class ProjectorConfig:
    """``in_dim -> out_dim`` Linear (``hidden_dim == 0``) or ``in -> hidden -> GELU -> Dropout -> out`` MLP."""

    in_dim: int = 768
    out_dim: int = 1536
    hidden_dim: int = 0
    dropout: float = 0.1
    dtype: str = "float32"
    param_dtype: str = "float32"

    @classmethod
    def video(cls) -> "ProjectorConfig":  # video_proj
        return cls(in_dim=768, out_dim=1536)

    @classmethod
    def audio(cls) -> "ProjectorConfig":  # audio_llama_proj
        return cls(in_dim=768, out_dim=1536)

    @classmethod
    def multi(cls) -> "ProjectorConfig":  # multi_llama_proj after the multiscale fusion
        return cls(in_dim=512, out_dim=1536)

    @classmethod
    def face(cls) -> "ProjectorConfig":  # face_proj
        return cls(in_dim=256, hidden_dim=768, out_dim=1536)

    @classmethod
    def tiny(cls, in_dim: int = 32, out_dim: int = 48, hidden_dim: int = 0) -> "ProjectorConfig":
        return cls(in_dim=in_dim, out_dim=out_dim, hidden_dim=hidden_dim)

    def validate(self) -> None:
        if self.in_dim <= 0 or self.out_dim <= 0 or self.hidden_dim < 0:
            raise ValueError(f"projector widths must be positive: {self}")


class Projector(nn.Module):
    """``[..., in_dim] -> [..., out_dim]``. Params: ``fc`` (Linear) or ``fc1``/``fc2`` (MLP)."""

    config: ProjectorConfig

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        c = self.config
        if x.shape[-1] != c.in_dim:
            raise ValueError(f"Projector: expected inputs [..., {c.in_dim}], got shape {tuple(x.shape)}")
        kw = dict(dtype=jnp.dtype(c.dtype), param_dtype=jnp.dtype(c.param_dtype))
        if c.hidden_dim == 0:
            return torch_dense(c.out_dim, c.in_dim, ("mlp", "embed"), name="fc", **kw)(x)
        h = torch_dense(c.hidden_dim, c.in_dim, ("embed", "mlp"), name="fc1", **kw)(x)
        h = nn.gelu(h, approximate=False)  # torch nn.GELU() default is the exact erf form
        h = nn.Dropout(c.dropout)(h, deterministic=deterministic)
        return torch_dense(c.out_dim, c.hidden_dim, ("mlp", "embed"), name="fc2", **kw)(h)
