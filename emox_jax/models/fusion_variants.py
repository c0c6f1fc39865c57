"""The non-default fusion encoders of the reference (reference-architecture.md §2.7), behind ``FusionEncoder``.

All take the *main* per-step features ``audio [B, Ta, audio_dim]`` and ``visual [B, Tv, visual_dim]`` and
return ``[B, num_tokens, out_dim]``. ``M = max(audio_dim, visual_dim)``.

- ``AttentionFusion`` (``multi_fusion_type: attention``): time-means -> ``multi_video_embs``/``multi_audio_embs``
  (Linear -> M) -> ``attention_mlp`` Linear(2M -> M) on ``[video, audio]`` -> ``fc_att`` Linear(M -> 2) (no
  nonlinearity, no softmax: unnormalised weights, as the reference) -> ``w0*video + w1*audio`` ->
  ``multi_llama_proj`` -> repeated ``num_tokens`` times.
- ``QFormerFusion`` (``qformer``): per-step projections to M, concatenated along time ``[video; audio]``,
  a Q-Former with ``num_tokens`` queries and a 264-row position table -> ``multi_llama_proj`` (768 -> out).
- ``DenseMoEFusion`` (``densemoe``): router Linear(2F -> 128)-ReLU-Linear(128 -> E) on the clamped
  ``[visual_projector(mean v), audio_projector(mean a)]`` (scores clamped to +-5, training noise N(0,0.1)
  clipped to +-0.02, softmax, clamped to >= 1e-6, renormalised); E experts each = two-modality softmax
  attention over projected means (``multi_video_embs``, ``multi_audio_embs``, ``attention_mlp`` 2M -> M -> ReLU
  -> 2 -> softmax; Xavier gain 0.1 init); weighted sum -> ``llm_projector`` (F -> out). F = M here (the
  reference passes ``fusion_dim = max_hidden_size``). The reference's NaN guards (``nan_to_num``) are no-ops on
  finite values and are not reproduced; its clamps are.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from emox_jax.layers.dense import dense
from emox_jax.models.fusion import FusionConfig
from emox_jax.models.projectors import torch_dense
from emox_jax.models.qformer import QFormer


def _check(name: str, x: jax.Array, dim: int, where: str) -> None:
    if x.ndim != 3 or x.shape[-1] != dim:
        raise ValueError(f"{where}: expected {name} features [B, T, {dim}], got shape {tuple(x.shape)}")


class AttentionFusion(nn.Module):
    config: FusionConfig

    @nn.compact
    def __call__(self, audio: jax.Array, visual: jax.Array, deterministic: bool = True) -> jax.Array:
        c = self.config
        _check("audio", audio, c.audio_dim, "AttentionFusion")
        _check("visual", visual, c.visual_dim, "AttentionFusion")
        kw = dict(dtype=jnp.dtype(c.dtype), param_dtype=jnp.dtype(c.param_dtype))
        m = c.max_dim
        v = torch_dense(m, c.visual_dim, ("mlp", "embed"), name="multi_video_embs", **kw)(jnp.mean(visual, axis=1))
        a = torch_dense(m, c.audio_dim, ("mlp", "embed"), name="multi_audio_embs", **kw)(jnp.mean(audio, axis=1))
        w = torch_dense(m, 2 * m, ("mlp", "embed"), name="attention_mlp", **kw)(jnp.concatenate([v, a], -1))
        w = torch_dense(2, m, ("embed", None), name="fc_att", **kw)(w)  # [B, 2], unnormalised
        fused = w[:, :1] * v + w[:, 1:] * a
        out = torch_dense(c.out_dim, m, ("mlp", "embed"), name="multi_llama_proj", **kw)(fused)
        return jnp.broadcast_to(out[:, None], (out.shape[0], c.num_tokens, c.out_dim))


class QFormerFusion(nn.Module):
    config: FusionConfig

    @nn.compact
    def __call__(self, audio: jax.Array, visual: jax.Array, deterministic: bool = True) -> jax.Array:
        c = self.config
        _check("audio", audio, c.audio_dim, "QFormerFusion")
        _check("visual", visual, c.visual_dim, "QFormerFusion")
        kw = dict(dtype=jnp.dtype(c.dtype), param_dtype=jnp.dtype(c.param_dtype))
        m = c.max_dim
        v = torch_dense(m, c.visual_dim, ("mlp", "embed"), name="multi_video_embs", **kw)(visual)
        a = torch_dense(m, c.audio_dim, ("mlp", "embed"), name="multi_audio_embs", **kw)(audio)
        q = QFormer(c.qformer, name="multi_qformer")(jnp.concatenate([v, a], axis=1), deterministic=deterministic)
        return torch_dense(c.out_dim, c.qformer.hidden_size, ("mlp", "embed"), name="multi_llama_proj", **kw)(q)


def _xavier(gain: float):
    return nn.initializers.variance_scaling(gain ** 2, "fan_avg", "uniform")


class _ModalityAttentionExpert(nn.Module):
    """``simpleattention_no_proj``: ``[B, Dv]``, ``[B, Da]`` means -> ``[B, M]`` (softmax over the two modalities)."""

    config: FusionConfig

    @nn.compact
    def __call__(self, v_mean: jax.Array, a_mean: jax.Array) -> jax.Array:
        c = self.config
        kw = dict(dtype=jnp.dtype(c.dtype), param_dtype=jnp.dtype(c.param_dtype), kernel_init=_xavier(0.1))
        m = c.max_dim
        v = dense(m, ("mlp", "embed"), name="multi_video_embs", **kw)(v_mean)
        a = dense(m, ("mlp", "embed"), name="multi_audio_embs", **kw)(a_mean)
        w = nn.relu(dense(m, ("mlp", "embed"), name="attention_mlp_in", **kw)(jnp.concatenate([v, a], -1)))
        w = jax.nn.softmax(dense(2, ("embed", None), name="attention_mlp_out", **kw)(w).astype(jnp.float32), -1)
        return w[:, :1].astype(v.dtype) * v + w[:, 1:].astype(v.dtype) * a


class DenseMoEFusion(nn.Module):
    config: FusionConfig

    @nn.compact
    def __call__(self, audio: jax.Array, visual: jax.Array, deterministic: bool = True) -> jax.Array:
        c = self.config
        _check("audio", audio, c.audio_dim, "DenseMoEFusion")
        _check("visual", visual, c.visual_dim, "DenseMoEFusion")
        dt, pdt = jnp.dtype(c.dtype), jnp.dtype(c.param_dtype)
        kw = dict(dtype=dt, param_dtype=pdt)
        f = c.max_dim
        v_mean, a_mean = jnp.mean(visual.astype(dt), axis=1), jnp.mean(audio.astype(dt), axis=1)
        v = jnp.clip(torch_dense(f, c.visual_dim, ("mlp", "embed"), name="visual_projector", **kw)(v_mean), -10, 10)
        a = jnp.clip(torch_dense(f, c.audio_dim, ("mlp", "embed"), name="audio_projector", **kw)(a_mean), -10, 10)
        feat = jnp.clip(jnp.concatenate([v, a], axis=-1), -10.0, 10.0)
        h = nn.relu(dense(c.router_hidden, ("embed", "mlp"), kernel_init=_xavier(0.1), name="router_in", **kw)(feat))
        uniform = lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -0.02, 0.02)  # noqa: E731
        scores = jnp.clip(dense(c.num_experts, ("mlp", None), kernel_init=uniform, name="router_out", **kw)(h), -5, 5)
        if not deterministic and c.router_noise > 0:
            noise = jax.random.normal(self.make_rng("dropout"), scores.shape, scores.dtype) * c.router_noise
            scores = jnp.clip(scores + jnp.clip(noise, -0.02, 0.02), -5.0, 5.0)
        weights = jnp.clip(jax.nn.softmax(scores.astype(jnp.float32), axis=-1), 1e-6, 1.0)
        weights = weights / (jnp.sum(weights, axis=-1, keepdims=True) + 1e-8)  # [B, E]
        experts = nn.vmap(_ModalityAttentionExpert, variable_axes={"params": 0}, split_rngs={"params": True},
                          in_axes=None, axis_size=c.num_experts, metadata_params={nn.PARTITION_NAME: "experts"})
        outs = experts(c, name="experts")(v_mean, a_mean)  # [E, B, F]
        fused = jnp.einsum("ebf,be->bf", outs, weights.astype(outs.dtype))
        out = torch_dense(c.out_dim, f, ("mlp", "embed"), name="llm_projector", **kw)(fused)
        return jnp.broadcast_to(out[:, None], (out.shape[0], c.num_tokens, c.out_dim))
