"""Fusion encoder: audio + visual features -> ``num_tokens`` LM tokens (reference-architecture.md §2.7).

One interface for every ``kind``::

    FusionEncoder(config)(audio, visual, deterministic=True) -> [B, num_tokens, out_dim]

- ``multiscale`` (the shipped design, ``MultiScaleFusion``): ``audio [B, Ta, S*audio_dim]`` (HuBERT layers
  16/18/22 time-means) and ``visual [B, Tv, S*visual_dim]`` (CLIP CLS of layers 12/16/22), split into S=3
  scales; shared ``audio_proj``/``visual_proj`` (Linear -> 512); per scale an expert: 8-head cross-attention
  (audio clips attend to video frames, attention dropout 0.1), ``r = attn + a_s``, ``f_s = r + FFN_s(r)`` with
  FFN = LN -> Linear -> GELU -> Dropout -> Linear; gate ``softmax(Linear(Dropout(GELU(Linear(mean_t(concat
  f_s))))))`` -> ``[B, S]``; ``sum_s g_s f_s`` -> time-mean -> ``multi_llama_proj`` (512 -> LM width) ->
  repeated ``num_tokens`` times. The S experts are one ``nn.vmap``-ed module (params with a leading
  ``experts`` axis): same math, one batched kernel per op instead of S.
- ``attention``, ``qformer``, ``densemoe`` (``fusion_variants.py``) take the *main* features
  ``audio [B, Ta, audio_dim]`` (HuBERT mean of the last 4 layers) and ``visual [B, Tv, visual_dim]`` (CLIP
  CLS of block 23), as the reference's ``encode_multi_merge(frame_hiddens, audio_hiddens)`` does.

Features are passed explicitly (the reference passes the multi-scale ones through hidden module state, §12
item 6). No padding masks: the reference never pads clips/frames inside a sample.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import linen as nn

from emox_jax.layers.norms import layer_norm
from emox_jax.models.projectors import torch_dense, torch_linear_kernel_init
from emox_jax.models.qformer import Attention, QFormerConfig

FUSION_KINDS = ("multiscale", "attention", "qformer", "densemoe")


@dataclasses.dataclass(frozen=True)
class FusionConfig:
    kind: str = "multiscale"
    audio_dim: int = 1024
    visual_dim: int = 1024
    num_scales: int = 3  # multiscale: scales per input
    hidden_dim: int = 512  # multiscale width
    num_heads: int = 8  # multiscale cross-attention heads
    dropout: float = 0.1
    num_experts: int = 3  # densemoe
    router_hidden: int = 128  # densemoe
    router_noise: float = 0.1  # densemoe: N(0, 0.1) score noise in training, clipped to +-0.02
    out_dim: int = 1536  # LM width
    num_tokens: int = 1  # num_multi_query_token
    qformer: QFormerConfig = QFormerConfig.multi()  # qformer kind (encoder_width = max(audio_dim, visual_dim))
    dtype: str = "float32"
    param_dtype: str = "float32"

    @classmethod
    def multiscale(cls, **kw) -> "FusionConfig":
        return cls(kind="multiscale", **kw)

    @classmethod
    def tiny(cls, kind: str = "multiscale", **kw) -> "FusionConfig":
        base = dict(kind=kind, audio_dim=24, visual_dim=20, hidden_dim=16, num_heads=4, router_hidden=8,
                    out_dim=40, num_tokens=1,
                    qformer=QFormerConfig.tiny(num_queries=1, encoder_width=24, num_positions=32))
        base.update(kw)
        return cls(**base)

    @property
    def max_dim(self) -> int:
        return max(self.audio_dim, self.visual_dim)

    def validate(self) -> None:
        if self.kind not in FUSION_KINDS:
            raise ValueError(f"fusion kind {self.kind!r} is not one of {FUSION_KINDS}")
        if self.kind == "multiscale" and self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} not divisible by num_heads {self.num_heads}")
        if self.kind == "qformer":
            self.qformer.validate()
            if self.qformer.encoder_width != self.max_dim or self.qformer.num_queries != self.num_tokens:
                raise ValueError(f"qformer.encoder_width ({self.qformer.encoder_width}) must equal "
                                 f"max(audio_dim, visual_dim) = {self.max_dim} and qformer.num_queries "
                                 f"({self.qformer.num_queries}) must equal num_tokens ({self.num_tokens})")


def _xavier_packed_in_proj(dim: int):
    """``nn.MultiheadAttention``'s Xavier-uniform on the packed ``[3*dim, dim]`` in-projection."""
    bound = (6.0 / (4 * dim)) ** 0.5

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class ScaleExpert(nn.Module):
    """One multiscale expert on ``a [B,Ta,H]`` (queries) and ``v [B,Tv,H]`` -> ``[B,Ta,H]``."""

    config: FusionConfig
    deterministic: bool = True

    @nn.compact
    def __call__(self, a: jax.Array, v: jax.Array) -> jax.Array:
        c = self.config
        dt, pdt = jnp.dtype(c.dtype), jnp.dtype(c.param_dtype)
        h = c.hidden_dim
        x = Attention(num_heads=c.num_heads, head_dim=h // c.num_heads, out_features=h, dropout_rate=c.dropout,
                      qkv_kernel_init=_xavier_packed_in_proj(h), out_kernel_init=torch_linear_kernel_init(2),
                      dtype=dt, param_dtype=pdt, name="cross_attn")(a, v, deterministic=self.deterministic)
        r = x + a  # audio residual
        f = layer_norm(1e-5, dtype=dt, param_dtype=pdt, name="ffn_norm")(r)
        f = torch_dense(h, h, ("embed", "mlp"), dtype=dt, param_dtype=pdt, name="ffn_in")(f)
        f = nn.Dropout(c.dropout)(nn.gelu(f, approximate=False), deterministic=self.deterministic)
        f = torch_dense(h, h, ("mlp", "embed"), dtype=dt, param_dtype=pdt, name="ffn_out")(f)
        return r + f


class MultiScaleFusion(nn.Module):
    """``audio [B,Ta,S*Da]``, ``visual [B,Tv,S*Dv]`` -> ``[B, num_tokens, out_dim]`` (see module docstring).

    Params: ``audio_proj``, ``visual_proj``, ``experts`` (vmapped ``ScaleExpert``: ``cross_attn``,
    ``ffn_norm``, ``ffn_in``, ``ffn_out``, leading ``experts`` axis), ``gate_in``, ``gate_out``,
    ``multi_llama_proj``. ``return_gate=True`` also returns the gate ``[B, S]``.
    """

    config: FusionConfig

    @nn.compact
    def __call__(self, audio: jax.Array, visual: jax.Array, deterministic: bool = True, return_gate: bool = False):
        c = self.config
        s = c.num_scales
        for name, x, d in (("audio", audio, c.audio_dim), ("visual", visual, c.visual_dim)):
            if x.ndim != 3 or x.shape[-1] != s * d:
                raise ValueError(f"MultiScaleFusion: expected {name} multi-scale features [B, T, {s}*{d}={s * d}], "
                                 f"got shape {tuple(x.shape)}")
        dt, pdt = jnp.dtype(c.dtype), jnp.dtype(c.param_dtype)
        kw = dict(dtype=dt, param_dtype=pdt)
        # [S, B, T, D]: scale s = channels [s*D, (s+1)*D) (torch.chunk order)
        a_s = jnp.stack(jnp.split(audio.astype(dt), s, axis=-1))
        v_s = jnp.stack(jnp.split(visual.astype(dt), s, axis=-1))
        a_s = torch_dense(c.hidden_dim, c.audio_dim, ("mlp", "embed"), name="audio_proj", **kw)(a_s)
        v_s = torch_dense(c.hidden_dim, c.visual_dim, ("mlp", "embed"), name="visual_proj", **kw)(v_s)
        experts = nn.vmap(ScaleExpert, variable_axes={"params": 0}, split_rngs={"params": True, "dropout": True},
                          in_axes=0, out_axes=0, axis_size=s, metadata_params={nn.PARTITION_NAME: "experts"})
        f = experts(c, deterministic=deterministic, name="experts")(a_s, v_s)  # [S, B, Ta, H]
        pooled = jnp.concatenate(list(jnp.mean(f, axis=2)), axis=-1)  # [B, S*H] in scale order
        g = torch_dense(c.hidden_dim, s * c.hidden_dim, ("mlp", "embed"), name="gate_in", **kw)(pooled)
        g = nn.Dropout(c.dropout)(nn.gelu(g, approximate=False), deterministic=deterministic)
        g = torch_dense(s, c.hidden_dim, ("embed", None), name="gate_out", **kw)(g)
        gate = jax.nn.softmax(g.astype(jnp.float32), axis=-1).astype(dt)  # [B, S]
        fused = jnp.einsum("sbth,bs->bth", f, gate)
        out = torch_dense(c.out_dim, c.hidden_dim, ("mlp", "embed"), name="multi_llama_proj", **kw)(
            jnp.mean(fused, axis=1))
        out = jnp.broadcast_to(out[:, None], (out.shape[0], c.num_tokens, c.out_dim))
        return (out, gate) if return_gate else out


class FusionEncoder(nn.Module):
    """Dispatch on ``config.kind``; ``__call__(audio, visual, deterministic=True) -> [B, num_tokens, out_dim]``.

    The variant's params sit under ``fusion`` whatever the kind.
    """

    config: FusionConfig

    @nn.compact
    def __call__(self, audio: jax.Array, visual: jax.Array, deterministic: bool = True) -> jax.Array:
        from emox_jax.models import fusion_variants as fv

        cls = {"multiscale": MultiScaleFusion, "attention": fv.AttentionFusion, "qformer": fv.QFormerFusion,
               "densemoe": fv.DenseMoEFusion}.get(self.config.kind)
        if cls is None:
            raise ValueError(f"unknown fusion kind {self.config.kind!r}; choose one of {FUSION_KINDS}")
        return cls(self.config, name="fusion")(audio, visual, deterministic=deterministic)
