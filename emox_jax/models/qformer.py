"""BLIP-2-style Q-Former used by the video and audio adapters (reference-architecture.md §2.3, §2.5).

Per adapter: learned position embeddings are added to the per-frame (or per-clip) encoder features
``[B, T, encoder_width]``; ``num_queries`` learned query tokens go through an embedding LayerNorm (+dropout)
and ``num_layers`` post-LN BERT layers, each with self-attention over the queries, cross-attention from the
queries to the features (K/V Linear ``encoder_width -> hidden``; present in *every* layer, as the reference's
``cross_attention_freq=1``) and the query FFN (``hidden -> intermediate -> hidden``, exact GELU). The text
branch of BERT (word/position embeddings, text FFN, MLM head) is deleted in the reference and absent here.

Output ``[B, num_queries, hidden]``. The layer stack is scanned (``nn.scan``; params carry a leading
``layers`` axis). Because every layer has cross-attention the stack is homogeneous; a BLIP-2 model with
``cross_attention_frequency > 1`` is therefore not representable (the converter refuses it by name).

Also defined here and reused by the facial pooling and the fusion encoder: ``Attention``, a multi-head
attention with biases whose param layout is ``query``/``key``/``value`` ``[in, heads, head_dim]`` and ``out``
``[heads, head_dim, out]`` (like ``emox_jax.layers.attention.MultiHeadAttention``) plus configurable inits and
attention-probability dropout (BERT and ``torch.nn.MultiheadAttention`` drop attention probabilities in
training; ``jax.nn.dot_product_attention`` cannot, so the training path with dropout computes probs
explicitly, the deterministic path uses the shared fused attention).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import linen as nn

from emox_jax.layers.attention import dot_product_attention, padding_mask
from emox_jax.layers.dense import dense_general
from emox_jax.layers.norms import layer_norm
from emox_jax.layers.scan import REMAT_POLICIES, scan_stack
from emox_jax.sharding import constrain

Init = Callable[..., jax.Array]


def attend(q: jax.Array, k: jax.Array, v: jax.Array, *, mask: jax.Array | None, dropout_rate: float,
           deterministic: bool, module: nn.Module, bias: jax.Array | None = None) -> jax.Array:
    """``[B,T,N,H] x [B,S,N,H] -> [B,T,N,H]`` with optional dropout on the attention probabilities.

    ``mask`` bool broadcastable to ``[B,N,T,S]`` (True = attend). The dropout rng comes from ``module``'s
    ``'dropout'`` stream.
    """
    if deterministic or dropout_rate == 0.0:
        return dot_product_attention(q, k, v, mask=mask, bias=bias)
    logits = jnp.einsum("btnh,bsnh->bnts", q, k).astype(jnp.float32) / math.sqrt(q.shape[-1])
    if bias is not None:
        logits = logits + bias.astype(jnp.float32)
    if mask is not None:
        logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(logits, axis=-1)
    keep = jax.random.bernoulli(module.make_rng("dropout"), 1.0 - dropout_rate, probs.shape)
    probs = jnp.where(keep, probs / (1.0 - dropout_rate), 0.0).astype(v.dtype)
    return jnp.einsum("bnts,bsnh->btnh", probs, v)


class Attention(nn.Module):
    """Multi-head attention with biases and attention dropout; ``[B,T,Dq], [B,S,Dkv] -> [B,T,out]``.

    ``kv_in_axis`` is the logical name of the key/value input width (``kv_embed`` for cross-attention to a
    wider encoder). Inits are configurable because BERT (N(0, 0.02)), ``nn.MultiheadAttention`` (Xavier on
    the packed in-projection) and plain ``nn.Linear`` differ.
    """

    num_heads: int
    head_dim: int
    out_features: int
    dropout_rate: float = 0.0
    kv_in_axis: str = "embed"
    qkv_kernel_init: Init = nn.initializers.normal(0.02)
    out_kernel_init: Init = nn.initializers.normal(0.02)
    qkv_bias_init: Init = nn.initializers.zeros
    out_bias_init: Init = nn.initializers.zeros
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, inputs_q: jax.Array, inputs_kv: jax.Array | None = None, mask: jax.Array | None = None,
                 deterministic: bool = True) -> jax.Array:
        inputs_kv = inputs_q if inputs_kv is None else inputs_kv
        kw = dict(features=(self.num_heads, self.head_dim), dtype=self.dtype, param_dtype=self.param_dtype,
                  kernel_init=self.qkv_kernel_init, bias_init=self.qkv_bias_init)
        q = dense_general(axes=("embed", "heads", "head_dim"), name="query", **kw)(inputs_q)
        k = dense_general(axes=(self.kv_in_axis, "heads", "head_dim"), name="key", **kw)(inputs_kv)
        v = dense_general(axes=(self.kv_in_axis, "heads", "head_dim"), name="value", **kw)(inputs_kv)
        out = attend(q, k, v, mask=mask, dropout_rate=self.dropout_rate, deterministic=deterministic,
                     module=self)
        return dense_general(features=self.out_features, axis=(-2, -1), axes=("heads", "head_dim", "embed"),
                             dtype=self.dtype, param_dtype=self.param_dtype, kernel_init=self.out_kernel_init,
                             bias_init=self.out_bias_init, name="out")(out)


@dataclasses.dataclass(frozen=True)
class QFormerConfig:
    """Q-Former sizes. Defaults = the reference's video Q-Former (BERT-base widths, 2 layers, 32 queries)."""

    num_layers: int = 2
    num_queries: int = 32
    hidden_size: int = 768
    num_heads: int = 12
    intermediate_size: int = 3072
    encoder_width: int = 1024
    num_positions: int = 32  # learned position table added to the features; 0 = none
    layer_norm_eps: float = 1e-12
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    initializer_range: float = 0.02
    dtype: str = "float32"
    param_dtype: str = "float32"
    remat: str = "none"

    @classmethod
    def video(cls) -> "QFormerConfig":
        """``video_Qformer``: CLIP CLS per frame (1024), ``nn.Embedding(32, 1024)`` frame positions."""
        return cls(num_positions=32)

    @classmethod
    def audio(cls) -> "QFormerConfig":
        """``audio_Qformer``: HuBERT clip means (1024), ``nn.Embedding(8, 1024)`` clip positions."""
        return cls(num_positions=8)

    @classmethod
    def multi(cls, num_queries: int = 1) -> "QFormerConfig":
        """``multi_Qformer`` of the ``qformer`` fusion variant: 264 positions over concatenated sequences."""
        return cls(num_queries=num_queries, num_positions=264)

    @classmethod
    def tiny(cls, **kw) -> "QFormerConfig":
        base = dict(num_layers=2, num_queries=8, hidden_size=32, num_heads=4, intermediate_size=64,
                    encoder_width=24, num_positions=8)
        base.update(kw)
        return cls(**base)

    def validate(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.num_layers < 1 or self.num_queries < 1:
            raise ValueError(f"num_layers and num_queries must be >= 1, got {self.num_layers}, {self.num_queries}")
        if self.remat not in REMAT_POLICIES:
            raise ValueError(f"remat {self.remat!r} is not one of {sorted(REMAT_POLICIES)}")


class QFormerLayer(nn.Module):
    """One post-LN BERT layer on the queries: self-attn, cross-attn to the features, query FFN.

    Scanned: ``__call__(carry=queries [B,Q,H], features [B,S,E], mask [B,1,1,S]|None) -> (queries, None)``.
    """

    config: QFormerConfig
    deterministic: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, features: jax.Array, mask: jax.Array | None):
        c = self.config
        dt, pdt = jnp.dtype(c.dtype), jnp.dtype(c.param_dtype)
        init = nn.initializers.normal(c.initializer_range)
        attn = dict(num_heads=c.num_heads, head_dim=c.hidden_size // c.num_heads, out_features=c.hidden_size,
                    dropout_rate=c.attention_dropout, qkv_kernel_init=init, out_kernel_init=init, dtype=dt,
                    param_dtype=pdt)
        drop = nn.Dropout(c.hidden_dropout)

        def post_ln(y, residual, name):
            y = drop(y, deterministic=self.deterministic)
            return layer_norm(c.layer_norm_eps, dtype=dt, param_dtype=pdt, name=name)(y + residual)

        h = post_ln(Attention(name="self_attn", **attn)(x, deterministic=self.deterministic), x, "self_attn_norm")
        h2 = Attention(name="cross_attn", kv_in_axis="kv_embed", **attn)(h, features, mask,
                                                                          deterministic=self.deterministic)
        h = post_ln(h2, h, "cross_attn_norm")
        f = dense_general(c.intermediate_size, ("embed", "mlp"), dtype=dt, param_dtype=pdt, kernel_init=init,
                          name="ffn_in")(h)
        f = nn.gelu(f, approximate=False)  # BERT "gelu" is the exact erf form
        f = dense_general(c.hidden_size, ("mlp", "embed"), dtype=dt, param_dtype=pdt, kernel_init=init,
                          name="ffn_out")(f)
        h = post_ln(f, h, "ffn_norm")
        return constrain(h, ("batch", "length", "act_embed")), None


class QFormer(nn.Module):
    """``features [B, T, encoder_width]`` (+ ``valid [B, T]`` bool) -> query outputs ``[B, num_queries, hidden]``.

    Params: ``query_tokens [Q, H]`` ~ N(0, 0.02); ``position_embedding [P, E]`` ~ N(0, 1) (PyTorch
    ``nn.Embedding`` default, as the reference; positions ``0..T-1`` are added to the features); ``emb_norm``;
    ``layers`` (scanned, leading ``layers`` axis). ``valid`` masks padded frames/clips out of the
    cross-attention (the reference always passes an all-ones mask).
    """

    config: QFormerConfig

    @nn.compact
    def __call__(self, features: jax.Array, valid: jax.Array | None = None, deterministic: bool = True) -> jax.Array:
        c = self.config
        if features.ndim != 3 or features.shape[-1] != c.encoder_width:
            raise ValueError(f"QFormer: expected features [B, T, {c.encoder_width}], got shape {tuple(features.shape)}")
        b, t, _ = features.shape
        dt, pdt = jnp.dtype(c.dtype), jnp.dtype(c.param_dtype)
        features = features.astype(dt)
        if c.num_positions:
            if t > c.num_positions:
                raise ValueError(f"QFormer: {t} frames/clips but the position table has only {c.num_positions} rows")
            pos = self.param("position_embedding",
                             nn.with_logical_partitioning(nn.initializers.normal(1.0), (None, "kv_embed")),
                             (c.num_positions, c.encoder_width), pdt)
            features = features + pos[:t].astype(dt)[None]
        features = constrain(features, ("batch", "kv_length", "act_embed"))
        queries = self.param("query_tokens",
                             nn.with_logical_partitioning(nn.initializers.normal(c.initializer_range),
                                                          ("queries", "embed")),
                             (c.num_queries, c.hidden_size), pdt)
        x = jnp.broadcast_to(queries.astype(dt)[None], (b, c.num_queries, c.hidden_size))
        x = layer_norm(c.layer_norm_eps, dtype=dt, param_dtype=pdt, name="emb_norm")(x)
        x = nn.Dropout(c.hidden_dropout)(x, deterministic=deterministic)
        mask = None if valid is None else padding_mask(valid)
        stack = scan_stack(QFormerLayer, length=c.num_layers, remat=c.remat, in_axes=(nn.broadcast, nn.broadcast))
        x, _ = stack(config=c, deterministic=deterministic, name="layers")(x, features, mask)
        return x
