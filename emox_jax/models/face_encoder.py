"""Facial branch (reference-architecture.md §2.6): FaceXFormer encoder (frozen) + temporal pooling (trainable).

- ``FaceXFormerHead``: per-stage Linear ``C_i -> 256`` on the Swin stage maps, bilinear resize of each map to
  the stage-1 size (torch ``F.interpolate(mode='bilinear', align_corners=False)``; for upsampling this is
  exactly ``jax.image.resize(method='bilinear')``, verified against torch in the tests), concatenation in
  *reverse* stage order (stage4, stage3, stage2, stage1) -> 1x1 conv ``4*256 -> 256`` without bias (a Dense
  on channels) -> global average pool -> ``[N, 256]``.
- ``FaceEncoder`` = pixel preprocessing + ``Swin`` + ``FaceXFormerHead`` on ``frames [B, T, H, W, 3]``
  -> ``[B, T, 256]``.
- ``FacePooling``: ``num_queries`` (4) learned queries (N(0,1)) attend over the T frame vectors with a
  4-head ``torch.nn.MultiheadAttention`` (no positional encoding: the pooling is permutation invariant over
  frames, as the reference), then ``face_proj`` MLP 256 -> 768 -> GELU -> Dropout(0.1) -> 1536
  -> ``[B, num_queries, 1536]``. The reference also defines a LayerNorm (``lynorm``) it never applies; it
  is not built here.

Pixel preprocessing (``pixel_mode``): FaceXFormer was trained on face crops scaled to [0,1] and normalised
with ImageNet mean/std. REFERENCE DEFECT (§12 item 1): Nano-EmoX feeds the whole raw frame with values
0..255 and no normalisation. ``"imagenet"`` (default) applies the fix (x/255, ImageNet mean/std; cropping
the face is the data pipeline's job); ``"reference_raw"`` reproduces the reference.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import linen as nn

from emox_jax.layers.dense import dense
from emox_jax.models.projectors import Projector, ProjectorConfig, torch_linear_kernel_init
from emox_jax.models.qformer import Attention
from emox_jax.models.swin import Swin, SwinConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PIXEL_MODES = ("imagenet", "reference_raw")


@dataclasses.dataclass(frozen=True)
class FaceEncoderConfig:
    swin: SwinConfig = SwinConfig()
    head_dim: int = 256  # FaceXFormer decoder_hidden_size
    pixel_mode: str = "imagenet"

    @classmethod
    def facexformer(cls, **kw) -> "FaceEncoderConfig":
        return cls(swin=SwinConfig.swin_b(), **kw)

    @classmethod
    def tiny(cls, **kw) -> "FaceEncoderConfig":
        return cls(swin=SwinConfig.tiny(), head_dim=16, **kw)

    def validate(self) -> None:
        self.swin.validate()
        if self.pixel_mode not in PIXEL_MODES:
            raise ValueError(f"pixel_mode {self.pixel_mode!r} is not one of {PIXEL_MODES}")


def resize_bilinear(x: jax.Array, size: tuple[int, int]) -> jax.Array:
    """``[N, h, w, C] -> [N, H, W, C]``, torch ``F.interpolate(bilinear, align_corners=False)`` for H>=h, W>=w.

    Half-pixel centres with edge clamping; for upsampling ``jax.image.resize``'s triangle kernel renormalised
    at the borders gives the same weights. Same size is returned unchanged (torch is the identity then too).
    """
    if tuple(x.shape[1:3]) == tuple(size):
        return x
    if x.shape[1] > size[0] or x.shape[2] > size[1]:
        raise ValueError(f"resize_bilinear only upsamples (torch parity); got {tuple(x.shape[1:3])} -> {size}")
    return jax.image.resize(x, (x.shape[0], *size, x.shape[-1]), method="bilinear", antialias=False)


def preprocess_pixels(x: jax.Array, pixel_mode: str) -> jax.Array:
    """0..255 pixels -> Swin input: ``imagenet`` = x/255 then ImageNet mean/std; ``reference_raw`` = unchanged."""
    x = x.astype(jnp.float32)
    if pixel_mode == "imagenet":
        return (x / 255.0 - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)
    if pixel_mode == "reference_raw":  # REFERENCE DEFECT reproduced: raw 0..255 frames straight into Swin
        return x
    raise ValueError(f"pixel_mode {pixel_mode!r} is not one of {PIXEL_MODES}")


class FaceXFormerHead(nn.Module):
    """Stage maps ``[N, R_i, R_i, C_i]`` (i = 0..3) -> ``[N, head_dim]``. Params ``linear_c{i}``, ``linear_fuse``."""

    head_dim: int = 256
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, stage_maps: list[jax.Array]) -> jax.Array:
        size = stage_maps[0].shape[1:3]
        ups = []
        for i, fmap in enumerate(stage_maps):
            h = dense(self.head_dim, ("embed", "mlp"), dtype=self.dtype, param_dtype=self.param_dtype,
                      name=f"linear_c{i}")(fmap)
            ups.append(resize_bilinear(h, size))
        fused = jnp.concatenate(ups[::-1], axis=-1)  # reverse stage order, as FaceXFormer
        fused = dense(self.head_dim, ("mlp", "embed"), use_bias=False, dtype=self.dtype,
                      param_dtype=self.param_dtype, name="linear_fuse")(fused)
        return jnp.mean(fused.astype(jnp.float32), axis=(1, 2)).astype(self.dtype)


class FaceEncoder(nn.Module):
    """``frames [B, T, H, W, 3]`` (NHWC, values 0..255, float or uint8) -> per-frame features ``[B, T, head_dim]``.

    Frozen in every phase; ``deterministic=False`` only matters with the Swin drop-path switches.
    Params: ``swin`` (``Swin``), ``head`` (``FaceXFormerHead``).
    """

    config: FaceEncoderConfig

    @nn.compact
    def __call__(self, frames: jax.Array, deterministic: bool = True) -> jax.Array:
        c, s = self.config, self.config.swin
        if frames.ndim != 5 or tuple(frames.shape[2:]) != (s.image_size, s.image_size, s.in_channels):
            raise ValueError(f"FaceEncoder: expected frames [B, T, {s.image_size}, {s.image_size}, {s.in_channels}] "
                             f"(NHWC, 0..255), got shape {tuple(frames.shape)}")
        b, t = frames.shape[:2]
        dt = jnp.dtype(s.dtype)
        x = preprocess_pixels(frames.reshape(b * t, *frames.shape[2:]), c.pixel_mode).astype(dt)
        maps = Swin(s, name="swin")(x, deterministic=deterministic)
        feats = FaceXFormerHead(c.head_dim, dtype=dt, param_dtype=jnp.dtype(s.param_dtype), name="head")(maps)
        return feats.reshape(b, t, c.head_dim)


@dataclasses.dataclass(frozen=True)
class FacePoolingConfig:
    dim: int = 256
    num_queries: int = 4
    num_heads: int = 4
    attention_dropout: float = 0.0  # torch nn.MultiheadAttention default (the reference passes none)
    proj: ProjectorConfig = ProjectorConfig.face()
    dtype: str = "float32"
    param_dtype: str = "float32"

    @classmethod
    def reference(cls) -> "FacePoolingConfig":
        return cls()

    @classmethod
    def tiny(cls, **kw) -> "FacePoolingConfig":
        base = dict(dim=16, num_queries=4, num_heads=4, proj=ProjectorConfig.tiny(16, 40, hidden_dim=24))
        base.update(kw)
        return cls(**base)

    def validate(self) -> None:
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} not divisible by num_heads {self.num_heads}")
        if self.proj.in_dim != self.dim:
            raise ValueError(f"proj.in_dim {self.proj.in_dim} must equal dim {self.dim}")
        self.proj.validate()


def _xavier_packed_in_proj(dim: int):
    """Xavier-uniform as ``nn.MultiheadAttention`` applies it to the packed ``[3*dim, dim]`` in-projection."""
    bound = (6.0 / (dim + 3 * dim)) ** 0.5

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class FacePooling(nn.Module):
    """``frame_feats [B, T, dim]`` (+ ``valid [B, T]``) -> face tokens ``[B, num_queries, proj.out_dim]``.

    Params: ``query [Q, dim]``, ``attn`` (``query``/``key``/``value``/``out``; torch's packed ``in_proj`` split
    by the converter), ``face_proj`` (``Projector``: ``fc1``, ``fc2``).
    """

    config: FacePoolingConfig

    @nn.compact
    def __call__(self, frame_feats: jax.Array, valid: jax.Array | None = None,
                 deterministic: bool = True) -> jax.Array:
        c = self.config
        if frame_feats.ndim != 3 or frame_feats.shape[-1] != c.dim:
            raise ValueError(f"FacePooling: expected frame features [B, T, {c.dim}], got {tuple(frame_feats.shape)}")
        dt, pdt = jnp.dtype(c.dtype), jnp.dtype(c.param_dtype)
        b = frame_feats.shape[0]
        query = self.param("query", nn.with_logical_partitioning(nn.initializers.normal(1.0), ("queries", "embed")),
                           (c.num_queries, c.dim), pdt)
        q = jnp.broadcast_to(query.astype(dt)[None], (b, c.num_queries, c.dim))
        mask = None if valid is None else valid.astype(bool)[:, None, None, :]
        pooled = Attention(num_heads=c.num_heads, head_dim=c.dim // c.num_heads, out_features=c.dim,
                           dropout_rate=c.attention_dropout, qkv_kernel_init=_xavier_packed_in_proj(c.dim),
                           out_kernel_init=torch_linear_kernel_init(fan_in_axes=2), dtype=dt, param_dtype=pdt,
                           name="attn")(q, frame_feats.astype(dt), mask, deterministic=deterministic)
        return Projector(c.proj, name="face_proj")(pooled, deterministic=deterministic)
