"""CLIP ViT vision tower (ViT-L/14 in Nano-EmoX) returning the hidden states a caller asks for.

Spec: reference-architecture §2.2. The reference runs HF ``CLIPVisionModel(pixel_values,
output_hidden_states=True)`` and keeps only CLS tokens: ``hidden_states[23]`` for the frame branch and
``hidden_states[12], [16], [22]`` for the fusion encoder. Hidden-state indexing follows HF exactly (checked
against transformers 5.24): index 0 = patch/class/position embeddings after ``pre_layrnorm``; index ``i`` (1..L)
= output of transformer block ``i``; ``post_layernorm`` is applied to none of them (only to the pooled output).

The 24 blocks run as one scanned stack (params ``layers/...`` with a leading ``layers`` axis). A call computes
only ``max(requested layers)`` blocks: the scanned params are sliced to that depth before the scan (the
reference computes block 24 and throws it away).

Input layout is NHWC, already CLIP-normalised: ``[B, H, W, 3]`` frames, or ``[B, T, H, W, 3]`` clips
(flattened to ``B*T`` frames and reshaped back). ``clip_preprocess`` turns raw 0..255 frames into that.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from emox_jax.layers.attention import MultiHeadAttention
from emox_jax.layers.dense import dense
from emox_jax.layers.norms import layer_norm
from emox_jax.layers.scan import REMAT_POLICIES, scan_stack
from emox_jax.sharding import constrain

# openai/clip-vit-large-patch14 preprocessor_config.json (image_mean / image_std), RGB order.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_ACTIVATIONS = {
    # CLIP's "quick_gelu": x * sigmoid(1.702 x) (what openai/clip-vit-large-patch14 uses).
    "quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
}


@dataclasses.dataclass(frozen=True)
class ClipVisionConfig:
    """Shapes of a CLIP vision tower plus the layer choices Nano-EmoX reads from it."""

    image_size: int = 224
    patch_size: int = 14
    num_channels: int = 3
    hidden_size: int = 1024
    num_layers: int = 24
    num_heads: int = 16
    mlp_dim: int = 4096
    activation: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    frame_layer: int = 23  # CLS of this hidden state feeds the video Q-Former (reference: hidden_states[-2])
    multiscale_layers: tuple[int, ...] = (12, 16, 22)  # CLS of these feeds the fusion encoder
    dtype: str = "float32"  # compute dtype (bf16 on accelerators); norms and softmax stay fp32
    param_dtype: str = "float32"
    remat_policy: str = "none"
    attention_impl: str | None = None  # None = per platform (layers/attention.py)

    @staticmethod
    def vit_l14(**overrides) -> "ClipVisionConfig":
        """openai/clip-vit-large-patch14 vision tower (303.2 M params incl. post-LN)."""
        return dataclasses.replace(ClipVisionConfig(), **overrides)

    @staticmethod
    def tiny(**overrides) -> "ClipVisionConfig":
        """A 4-block, 64-wide tower on 32x32 images (tests, CPU smoke runs)."""
        return dataclasses.replace(ClipVisionConfig(image_size=32, patch_size=8, hidden_size=64, num_layers=4,
                                                    num_heads=4, mlp_dim=128, frame_layer=3,
                                                    multiscale_layers=(1, 2, 3)), **overrides)

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_tokens(self) -> int:
        return self.grid * self.grid + 1

    def validate(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation {self.activation!r} not in {sorted(_ACTIVATIONS)}")
        if self.remat_policy not in REMAT_POLICIES:
            raise ValueError(f"remat_policy {self.remat_policy!r} not in {sorted(REMAT_POLICIES)}")
        for name in ("frame_layer", "multiscale_layers"):
            vals = getattr(self, name)
            for v in (vals if isinstance(vals, tuple) else (vals,)):
                if not 0 <= v <= self.num_layers:
                    raise ValueError(f"{name} entry {v} outside 0..num_layers={self.num_layers}")


def check_layers(layers: Sequence[int], num_layers: int, what: str) -> tuple[int, ...]:
    """Validate requested hidden-state indices (0..num_layers) -> sorted unique tuple."""
    layers = tuple(int(i) for i in layers)
    if not layers:
        raise ValueError(f"{what}: ask for at least one hidden state (layers=())")
    bad = [i for i in layers if not 0 <= i <= num_layers]
    if bad:
        raise ValueError(f"{what}: hidden-state indices {bad} outside 0..{num_layers} "
                         f"(0 = embeddings, i = output of block i)")
    return tuple(sorted(set(layers)))


class ClipVisionBlock(nn.Module):
    """Pre-LN transformer block: ``h + attn(ln1(h))`` then ``h + mlp(ln2(h))``. ``[B, T, D] -> [B, T, D]``.

    Scan output ``y`` is the block's output CLS ``[B, D]`` (or all tokens ``[B, T, D]`` with ``emit_tokens``),
    so the caller can pick any intermediate hidden state without a second pass.
    """

    config: ClipVisionConfig
    emit_tokens: bool = False

    @nn.compact
    def __call__(self, h: jax.Array, _unused=None):
        cfg = self.config
        dt, pdt = jnp.dtype(cfg.dtype), jnp.dtype(cfg.param_dtype)
        x = layer_norm(cfg.layer_norm_eps, dtype=dt, param_dtype=pdt, name="layer_norm1")(h)
        x = MultiHeadAttention(num_heads=cfg.num_heads, head_dim=cfg.hidden_size // cfg.num_heads, dtype=dt,
                               param_dtype=pdt, implementation=cfg.attention_impl, name="self_attn")(x)
        h = constrain(h + x, ("batch", "length", "act_embed"))
        x = layer_norm(cfg.layer_norm_eps, dtype=dt, param_dtype=pdt, name="layer_norm2")(h)
        x = dense(cfg.mlp_dim, ("embed", "mlp"), dtype=dt, param_dtype=pdt, name="fc1")(x)
        x = constrain(_ACTIVATIONS[cfg.activation](x), ("batch", "length", "act_mlp"))
        x = dense(cfg.hidden_size, ("mlp", "embed"), dtype=dt, param_dtype=pdt, name="fc2")(x)
        h = constrain(h + x, ("batch", "length", "act_embed"))
        return h, (h if self.emit_tokens else h[:, 0])


def sliced_stack(block_cls, *, depth: int, full_depth: int, initializing: bool, remat: str, **block_kwargs):
    """A scanned stack that owns ``full_depth`` layers of params but runs only the first ``depth``.

    At init the whole stack is built (so the param tree always has ``full_depth`` layers); at apply the
    scanned params are sliced to ``[:depth]`` on read, so blocks past ``depth`` are never computed.
    """
    length = full_depth if initializing else depth
    stack = scan_stack(block_cls, length=length, remat=remat)
    if not initializing and depth != full_depth:
        stack = nn.map_variables(stack, "params", trans_in_fn=lambda v: jax.tree.map(lambda a: a[:depth], v),
                                 mutable=False)
    return stack(**block_kwargs)


class ClipVision(nn.Module):
    """CLIP vision tower. ``__call__(pixel_values, layers=None, return_tokens=False, pooled=False)``.

    ``pixel_values``: ``[B, S, S, C]`` or ``[B, T, S, S, C]`` (S = image_size, C = num_channels), CLIP-normalised.
    ``layers``: hidden-state indices (0..L, HF indexing); default ``(frame_layer, *multiscale_layers)``.
    Returns a dict (leading dims ``[B]`` or ``[B, T]``, float32):
      ``"cls"``: ``{i: [..., D]}`` CLS token of hidden state i, for every requested i;
      ``"tokens"``: ``{i: [..., N+1, D]}`` all tokens (CLS first) when ``return_tokens``;
      ``"pooled"``: ``[..., D]`` = post_layernorm(CLS of block L) when ``pooled`` (forces all L blocks).
    Params: ``embeddings/{patch_embedding, class_embedding, position_embedding}``, ``pre_layrnorm``,
    ``layers/{layer_norm1, self_attn/{query,key,value,out}, layer_norm2, fc1, fc2}`` (leading ``layers`` axis),
    ``post_layernorm``.
    """

    config: ClipVisionConfig

    def check_pixels(self, pixel_values) -> None:
        cfg = self.config
        shape = tuple(pixel_values.shape)
        want = (cfg.image_size, cfg.image_size, cfg.num_channels)
        if len(shape) not in (4, 5) or shape[-3:] != want:
            raise ValueError(f"ClipVision: pixel_values must be [B, {want[0]}, {want[1]}, {want[2]}] or "
                             f"[B, T, {want[0]}, {want[1]}, {want[2]}] (NHWC, CLIP-normalised; use "
                             f"clip_preprocess for raw frames), got shape {shape}")

    @nn.compact
    def __call__(self, pixel_values: jax.Array, layers: Sequence[int] | None = None, return_tokens: bool = False,
                 pooled: bool = False) -> dict:
        cfg = self.config
        self.check_pixels(pixel_values)
        dt, pdt = jnp.dtype(cfg.dtype), jnp.dtype(cfg.param_dtype)
        if layers is None:
            layers = (cfg.frame_layer, *cfg.multiscale_layers)
        layers = check_layers(layers, cfg.num_layers, "ClipVision")
        lead = pixel_values.shape[:-3]
        x = pixel_values.reshape((-1,) + pixel_values.shape[-3:]).astype(dt)
        b = x.shape[0]

        # Patch embedding: a stride-p conv without bias (HF Conv2d(bias=False)), NHWC.
        x = nn.Conv(cfg.hidden_size, (cfg.patch_size, cfg.patch_size), strides=(cfg.patch_size, cfg.patch_size),
                    padding="VALID", use_bias=False, dtype=dt, param_dtype=pdt,
                    kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(),
                                                             (None, "conv", "conv_in", "embed")),
                    name="patch_embedding")(x)
        x = x.reshape(b, cfg.grid * cfg.grid, cfg.hidden_size)
        cls = self.param("class_embedding", nn.with_logical_partitioning(nn.initializers.normal(1.0), ("embed",)),
                         (cfg.hidden_size,), pdt)
        pos = self.param("position_embedding",
                         nn.with_logical_partitioning(nn.initializers.normal(0.02), ("patch", "embed")),
                         (cfg.num_tokens, cfg.hidden_size), pdt)
        x = jnp.concatenate([jnp.broadcast_to(cls.astype(dt), (b, 1, cfg.hidden_size)), x], axis=1)
        x = x + pos.astype(dt)[None]
        h = layer_norm(cfg.layer_norm_eps, dtype=dt, param_dtype=pdt, name="pre_layrnorm")(x)
        h = constrain(h, ("batch", "length", "act_embed"))

        initializing = self.is_initializing()
        depth = cfg.num_layers if (pooled or initializing) else max(layers)
        per_layer = None
        if depth > 0:
            h_last, per_layer = sliced_stack(ClipVisionBlock, depth=depth, full_depth=cfg.num_layers,
                                             initializing=initializing, remat=cfg.remat_policy,
                                             config=cfg, emit_tokens=return_tokens, name="layers")(h, None)
        post_ln = layer_norm(cfg.layer_norm_eps, dtype=dt, param_dtype=pdt, name="post_layernorm")

        def hidden(i):  # hidden state i: [b, D] (CLS) or [b, T, D] (tokens)
            if i == 0:
                return h if return_tokens else h[:, 0]
            return per_layer[i - 1]

        def unflatten(a):
            return a.astype(jnp.float32).reshape(lead + a.shape[1:])

        out = {"cls": {}}
        if return_tokens:
            out["tokens"] = {}
        for i in layers:
            hs = hidden(i)
            out["cls"][i] = unflatten(hs[:, 0] if return_tokens else hs)
            if return_tokens:
                out["tokens"][i] = unflatten(hs)
        if pooled or initializing:
            pooled_cls = post_ln(h_last[:, 0])
            if pooled:
                out["pooled"] = unflatten(pooled_cls)
        return out


@functools.partial(jax.jit, static_argnames=("image_size", "mean", "std"))
def clip_preprocess(frames, image_size: int = 224, mean: tuple[float, ...] = CLIP_MEAN,
                    std: tuple[float, ...] = CLIP_STD) -> jax.Array:
    """Raw RGB frames ``[..., H, W, 3]`` (uint8, or float in 0..255) -> CLIP pixels ``[..., S, S, 3]`` float32.

    Mirrors the HF CLIP image processor the reference applies (§2.2): resize so the shortest side is ``S``
    (bicubic; the longer side becomes ``int(S * long / short)``), centre crop ``S x S``, rescale 1/255, subtract
    ``mean`` and divide by ``std`` per channel. For the reference's own input (decord already resized frames to
    224x224) resize and crop are no-ops and the result is exact. For other sizes ``jax.image.resize``'s bicubic
    (Keys a=-0.5, antialiased when shrinking) stands in for PIL's: close but not bit-identical, since PIL also
    rounds the resized image back to uint8.
    """
    if frames.ndim < 3 or frames.shape[-1] != 3:
        raise ValueError(f"clip_preprocess: frames must be [..., H, W, 3] RGB, got shape {tuple(frames.shape)}")
    # The reference casts float frames to uint8 before PIL; clip to the same range (no rounding needed for
    # integer-valued decoder output).
    x = jnp.clip(frames.astype(jnp.float32), 0.0, 255.0)
    h, w = x.shape[-3], x.shape[-2]
    if (h, w) != (image_size, image_size):
        short, long = (h, w) if h <= w else (w, h)
        new_long = int(image_size * long / short)
        new_h, new_w = (image_size, new_long) if h <= w else (new_long, image_size)
        x = jax.image.resize(x, x.shape[:-3] + (new_h, new_w, 3), method="bicubic", antialias=True)
        top, left = (new_h - image_size) // 2, (new_w - image_size) // 2
        x = x[..., top:top + image_size, left:left + image_size, :]
        x = jnp.clip(x, 0.0, 255.0)  # bicubic overshoots; PIL clamps to the uint8 range
    x = x / 255.0
    return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


__all__ = ("CLIP_MEAN", "CLIP_STD", "ClipVisionConfig", "ClipVision", "ClipVisionBlock", "clip_preprocess",
           "check_layers", "sliced_stack")
