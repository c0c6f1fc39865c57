"""Swin Transformer (v1) backbone in the torchvision ``swin_b`` layout (reference-architecture.md §2.6).

Frozen backbone of the facial encoder. NHWC throughout: ``pixels [N, H, W, 3]`` (already normalised; the
facial encoder decides the normalisation) -> the four stage outputs (before patch merging, i.e. what the
reference's hooks on ``features[1]``, ``[3]``, ``[5]``, ``[7]`` see):
``[N,56,56,128]``, ``[N,28,28,256]``, ``[N,14,14,512]``, ``[N,7,7,1024]`` for Swin-B at 224.

Pieces (torchvision semantics): 4x4/4 patch conv + LayerNorm; blocks = pre-LN window attention (windows of
7x7, relative position bias table ``[(2w-1)^2, heads]``, every second block cyclically shifted by ``w//2``
with the -100 additive mask of the shifted regions; no shift when the map is no larger than a window) and
pre-LN GELU MLP; patch merging = 2x2 neighbours concatenated in torchvision's v1 order
``x[0::2,0::2], x[1::2,0::2], x[0::2,1::2], x[1::2,1::2]`` -> LayerNorm(4C) -> Linear(4C, 2C, no bias).
The final LayerNorm/avgpool/head are not part of this module (their output is unused by the reference).

Scanning: each stage's blocks alternate unshifted/shifted, so a stage is scanned over *pairs* of blocks
(``SwinBlockPair`` = block 2k unshifted + block 2k+1 shifted); stage 3 of Swin-B (18 blocks) is 9 scan steps.
Stage depths must therefore be even (they are for every torchvision Swin). Params of stage ``i`` live under
``stage{i}/{even,odd}/...`` with a leading ``layers`` axis of length ``depth // 2``.

Stochastic depth: torchvision's rate rises linearly from 0 to ``drop_path_rate`` over all blocks and is active
only in training. REFERENCE DEFECT (§2.6, §12 item 2): Nano-EmoX leaves Swin in training mode, so drop-path
(up to p=0.5) is on at inference too. We run deterministically; ``reference_drop_path=True`` reproduces the
defect (needs a ``'dropout'`` rng). The per-block rates are a scanned input to the stack.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from emox_jax.layers.attention import dot_product_attention
from emox_jax.layers.dense import dense, dense_general
from emox_jax.layers.norms import layer_norm
from emox_jax.layers.scan import REMAT_POLICIES, scan_stack
from emox_jax.sharding import constrain


@dataclasses.dataclass(frozen=True)
class SwinConfig:
    image_size: int = 224
    patch_size: int = 4
    in_channels: int = 3
    embed_dim: int = 128
    depths: tuple[int, ...] = (2, 2, 18, 2)
    num_heads: tuple[int, ...] = (4, 8, 16, 32)
    window_size: int = 7
    mlp_ratio: float = 4.0
    layer_norm_eps: float = 1e-5
    drop_path_rate: float = 0.5  # torchvision swin_b's stochastic_depth_prob
    reference_drop_path: bool = False  # REFERENCE DEFECT switch: drop-path on even when deterministic
    dtype: str = "float32"
    param_dtype: str = "float32"
    remat: str = "none"

    @classmethod
    def swin_b(cls, **kw) -> "SwinConfig":
        """torchvision ``swin_b`` (the FaceXFormer backbone): 86,743,224 params without the head."""
        return cls(**kw)

    @classmethod
    def tiny(cls, **kw) -> "SwinConfig":
        # 2 stages: 8x8 (shifted windows active) then 4x4 (one window, no shift), as Swin-B's last stage.
        base = dict(image_size=16, patch_size=2, embed_dim=16, depths=(2, 2), num_heads=(2, 4),
                    window_size=4, drop_path_rate=0.1)
        base.update(kw)
        return cls(**base)

    @property
    def num_stages(self) -> int:
        return len(self.depths)

    def stage_resolution(self, i: int) -> int:
        return self.image_size // self.patch_size // (2 ** i)

    def stage_dim(self, i: int) -> int:
        return self.embed_dim * 2 ** i

    def validate(self) -> None:
        if len(self.depths) != len(self.num_heads):
            raise ValueError(f"depths {self.depths} and num_heads {self.num_heads} must have the same length")
        if any(d % 2 for d in self.depths):
            raise ValueError(f"every stage depth must be even (blocks are scanned in unshifted/shifted pairs), "
                             f"got depths {self.depths}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        for i in range(self.num_stages):
            r = self.stage_resolution(i)
            if r < 1 or r % self.window_size:
                raise ValueError(f"stage {i} feature map is {r}x{r}, not a multiple of window_size "
                                 f"{self.window_size} (image_size {self.image_size}, patch {self.patch_size})")
            if self.stage_dim(i) % self.num_heads[i]:
                raise ValueError(f"stage {i} width {self.stage_dim(i)} not divisible by {self.num_heads[i]} heads")
        if self.remat not in REMAT_POLICIES:
            raise ValueError(f"remat {self.remat!r} is not one of {sorted(REMAT_POLICIES)}")

    def block_drop_rates(self) -> list[np.ndarray]:
        """Per stage, ``[depth//2, 2]`` stochastic-depth rates (torchvision: ``p * k / (total - 1)``)."""
        total = sum(self.depths)
        out, k = [], 0
        for d in self.depths:
            rates = [self.drop_path_rate * (k + j) / max(total - 1, 1) for j in range(d)]
            out.append(np.asarray(rates, np.float32).reshape(d // 2, 2))
            k += d
        return out


def relative_position_index(window: int) -> np.ndarray:
    """``[w*w, w*w]`` indices into the ``[(2w-1)^2, heads]`` bias table (torchvision's construction)."""
    coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0)
    rel = rel + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def window_partition(x: jax.Array, w: int) -> jax.Array:
    """``[B, H, W, C] -> [B * nW, w*w, C]`` with windows in row-major order (per image)."""
    b, h, wd, c = x.shape
    x = x.reshape(b, h // w, w, wd // w, w, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b * (h // w) * (wd // w), w * w, c)


def window_reverse(x: jax.Array, w: int, b: int, h: int, wd: int) -> jax.Array:
    c = x.shape[-1]
    x = x.reshape(b, h // w, wd // w, w, w, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, wd, c)


def shifted_window_mask(res: int, w: int, shift: int) -> np.ndarray:
    """``[nW, w*w, w*w]`` additive mask (0 within a region, -100 across regions), as torchvision."""
    img = np.zeros((res, res), np.float32)
    slices = ((0, res - w), (res - w, res - shift), (res - shift, res))
    count = 0
    for h0, h1 in slices:
        for w0, w1 in slices:
            img[h0:h1, w0:w1] = count
            count += 1
    win = img.reshape(res // w, w, res // w, w).transpose(0, 2, 1, 3).reshape(-1, w * w)
    diff = win[:, None, :] - win[:, :, None]
    return np.where(diff != 0, -100.0, 0.0).astype(np.float32)


def drop_path(x: jax.Array, rate: jax.Array, module: nn.Module) -> jax.Array:
    """Per-sample stochastic depth (torchvision ``StochasticDepth(mode='row')``): keep with 1-rate, rescale."""
    keep_prob = 1.0 - rate
    keep = jax.random.bernoulli(module.make_rng("dropout"), keep_prob, (x.shape[0],) + (1,) * (x.ndim - 1))
    return jnp.where(keep, x / keep_prob.astype(x.dtype), jnp.zeros((), x.dtype))


class SwinBlock(nn.Module):
    """Pre-LN shifted-window attention + MLP on ``[B, R, R, C]``; ``rate`` is this block's drop-path rate."""

    config: SwinConfig
    stage: int
    shifted: bool
    deterministic: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, rate: jax.Array) -> jax.Array:
        c = self.config
        dt, pdt = jnp.dtype(c.dtype), jnp.dtype(c.param_dtype)
        b, res, _, dim = x.shape
        heads, w = c.num_heads[self.stage], c.window_size
        shift = w // 2 if (self.shifted and res > w) else 0  # torchvision: no shift when one window covers the map
        use_drop_path = c.reference_drop_path or not self.deterministic

        def residual(y, inp):
            if use_drop_path:
                y = drop_path(y, rate, self)
            return inp + y

        h = layer_norm(c.layer_norm_eps, dtype=dt, param_dtype=pdt, name="norm1")(x)
        if shift:
            h = jnp.roll(h, (-shift, -shift), axis=(1, 2))
        win = window_partition(h, w)  # [B*nW, N, C]
        qkv = dense_general((3, heads, dim // heads), ("embed", None, "heads", "head_dim"), dtype=dt,
                            param_dtype=pdt, name="qkv")(win)
        table = self.param("relative_position_bias_table",
                           nn.with_logical_partitioning(nn.initializers.truncated_normal(0.02), (None, "heads")),
                           ((2 * w - 1) ** 2, heads), pdt)
        n = w * w
        rel = table[relative_position_index(w).reshape(-1)].reshape(n, n, heads).transpose(2, 0, 1)
        n_win = (res // w) ** 2
        bias = jnp.broadcast_to(rel[None, None], (1, n_win, heads, n, n))
        if shift:
            bias = bias + jnp.asarray(shifted_window_mask(res, w, shift))[None, :, None]
        bias = jnp.broadcast_to(bias, (b, n_win, heads, n, n)).reshape(b * n_win, heads, n, n).astype(dt)
        attn = dot_product_attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], bias=bias)
        attn = dense_general(dim, ("heads", "head_dim", "embed"), axis=(-2, -1), dtype=dt, param_dtype=pdt,
                             name="proj")(attn)
        h = window_reverse(attn, w, b, res, res)
        if shift:
            h = jnp.roll(h, (shift, shift), axis=(1, 2))
        x = residual(h, x)

        h = layer_norm(c.layer_norm_eps, dtype=dt, param_dtype=pdt, name="norm2")(x)
        h = dense(int(dim * c.mlp_ratio), ("embed", "mlp"), dtype=dt, param_dtype=pdt, name="fc1")(h)
        h = nn.gelu(h, approximate=False)
        h = dense(dim, ("mlp", "embed"), dtype=dt, param_dtype=pdt, name="fc2")(h)
        return residual(h, x)


class SwinBlockPair(nn.Module):
    """Scan step: block 2k (unshifted) then block 2k+1 (shifted). ``rates [2]`` is the scanned input."""

    config: SwinConfig
    stage: int
    deterministic: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, rates: jax.Array):
        kw = dict(config=self.config, stage=self.stage, deterministic=self.deterministic)
        x = SwinBlock(shifted=False, name="even", **kw)(x, rates[0])
        x = SwinBlock(shifted=True, name="odd", **kw)(x, rates[1])
        return constrain(x, ("batch", None, None, "act_embed")), None


class PatchMerging(nn.Module):
    """``[B, R, R, C] -> [B, R/2, R/2, 2C]`` (torchvision v1 order x0,x1,x2,x3; LN(4C); Linear no bias)."""

    config: SwinConfig

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = self.config
        dt, pdt = jnp.dtype(c.dtype), jnp.dtype(c.param_dtype)
        x = jnp.concatenate([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], axis=-1)
        x = layer_norm(c.layer_norm_eps, dtype=dt, param_dtype=pdt, name="norm")(x)
        return dense(x.shape[-1] // 2, ("mlp", "embed"), use_bias=False, dtype=dt, param_dtype=pdt,
                     name="reduction")(x)


class Swin(nn.Module):
    """``pixels [N, H, W, C]`` -> list of ``num_stages`` stage maps ``[N, R_i, R_i, C_i]`` (NHWC)."""

    config: SwinConfig

    @nn.compact
    def __call__(self, pixels: jax.Array, deterministic: bool = True) -> list[jax.Array]:
        c = self.config
        expect = (c.image_size, c.image_size, c.in_channels)
        if pixels.ndim != 4 or tuple(pixels.shape[1:]) != expect:
            raise ValueError(f"Swin: expected pixels [N, {c.image_size}, {c.image_size}, {c.in_channels}] (NHWC), "
                             f"got shape {tuple(pixels.shape)}")
        dt, pdt = jnp.dtype(c.dtype), jnp.dtype(c.param_dtype)
        x = nn.Conv(c.embed_dim, (c.patch_size, c.patch_size), strides=(c.patch_size, c.patch_size),
                    padding="VALID", dtype=dt, param_dtype=pdt,
                    kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(),
                                                             (None, None, "conv_in", "conv_out")),
                    bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("conv_out",)),
                    name="patch_embed")(pixels.astype(dt))
        x = layer_norm(c.layer_norm_eps, dtype=dt, param_dtype=pdt, name="patch_norm")(x)
        outs = []
        for i, rates in enumerate(c.block_drop_rates()):
            stack = scan_stack(SwinBlockPair, length=c.depths[i] // 2, remat=c.remat, in_axes=(0,))
            x, _ = stack(config=c, stage=i, deterministic=deterministic, name=f"stage{i}")(x, jnp.asarray(rates))
            outs.append(x)
            if i < c.num_stages - 1:
                x = PatchMerging(c, name=f"merge{i}")(x)
        return outs
