"""HuBERT-Large (chinese-hubert-large shapes) returning time-averaged (or full) hidden states of chosen layers.

Spec: reference-architecture §2.4 and §10.3. Pipeline for a waveform batch ``[B, N]`` (16 kHz):

1. pad clips shorter than ``min_samples`` (2 s) with trailing zeros — the reference pads in its audio loader
   (``load_audio``: "if shorter than 2 s, zero-pad to 2 s") before normalising; we do it here, at trace time,
   so any caller gets the same behaviour;
2. zero-mean / unit-variance normalisation (``(x - mean) / sqrt(var + 1e-7)``, HF ``Wav2Vec2FeatureExtractor``);
3. 7-layer conv feature extractor (no bias, LayerNorm over channels + GELU after each conv) -> ``[B, T, 512]``;
4. feature projection (LayerNorm + Linear) -> ``[B, T, D]``;
5. ``h = x + GELU(weight-normalised grouped conv(x))`` (the conv's folded weight is stored);
6. L stable-layer-norm (pre-LN) blocks as one scanned stack; final LayerNorm.

Hidden-state indexing follows the reference (transformers 4.49): index 0 = input of block 1 (after the
positional conv), index i < L = output of block i, index L = output of block L **after** the final LayerNorm.
(transformers 5.x returns block L's output without the final LayerNorm in ``hidden_states[-1]``; its
``last_hidden_state`` is the reference's index L.) Only ``max(requested layers)`` blocks are computed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from emox_jax.layers.attention import MultiHeadAttention
from emox_jax.layers.dense import dense
from emox_jax.layers.norms import layer_norm
from emox_jax.layers.scan import REMAT_POLICIES
from emox_jax.models.clip_vit import check_layers, sliced_stack
from emox_jax.sharding import constrain

NORMALIZE_MODES = ("per_clip", "batch", "none")


@dataclasses.dataclass(frozen=True)
class HubertConfig:
    """HuBERT encoder shapes, input handling and the layer choices Nano-EmoX reads."""

    conv_dim: tuple[int, ...] = (512,) * 7
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    hidden_size: int = 1024
    num_layers: int = 24
    num_heads: int = 16
    mlp_dim: int = 4096
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    layer_norm_eps: float = 1e-5
    feat_extract_norm: str = "layer"
    do_stable_layer_norm: bool = True
    sample_rate: int = 16000
    min_samples: int = 32000  # clips shorter than this (2 s) are zero-padded to it (reference §10.3)
    normalize: str = "per_clip"  # "per_clip" (our fix) | "batch" (reference: whole batch as one utterance) | "none"
    main_layers: tuple[int, ...] = (21, 22, 23, 24)  # averaged -> the audio-branch feature
    multiscale_layers: tuple[int, ...] = (16, 18, 22)  # each time-averaged -> fusion encoder
    dtype: str = "float32"
    param_dtype: str = "float32"
    remat_policy: str = "none"
    attention_impl: str | None = None

    @staticmethod
    def large(**overrides) -> "HubertConfig":
        """TencentGameMate/chinese-hubert-large (315.4 M params in the HF model; we omit masked_spec_embed)."""
        return dataclasses.replace(HubertConfig(), **overrides)

    @staticmethod
    def tiny(**overrides) -> "HubertConfig":
        """3 conv layers (stride 20 overall), 64 wide, 4 blocks; 0.1 s minimum clip (tests, CPU smoke runs)."""
        return dataclasses.replace(HubertConfig(
            conv_dim=(32, 32, 32), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2), hidden_size=64, num_layers=4,
            num_heads=4, mlp_dim=128, pos_conv_kernel=16, pos_conv_groups=4, min_samples=1600,
            main_layers=(1, 2, 3, 4), multiscale_layers=(1, 2, 3)), **overrides)

    def num_frames(self, num_samples: int) -> int:
        """Frames the conv extractor yields for ``num_samples`` (after padding to ``min_samples``)."""
        t = max(num_samples, self.min_samples)
        for k, s in zip(self.conv_kernel, self.conv_stride):
            t = (t - k) // s + 1
        return t

    def validate(self) -> None:
        if not len(self.conv_dim) == len(self.conv_kernel) == len(self.conv_stride):
            raise ValueError(f"conv_dim/conv_kernel/conv_stride lengths differ: {len(self.conv_dim)}, "
                             f"{len(self.conv_kernel)}, {len(self.conv_stride)}")
        if self.feat_extract_norm != "layer" or not self.do_stable_layer_norm:
            raise ValueError("only the HuBERT-Large layout is implemented: feat_extract_norm='layer' and "
                             f"do_stable_layer_norm=True (got {self.feat_extract_norm!r}, "
                             f"{self.do_stable_layer_norm})")
        if self.normalize not in NORMALIZE_MODES:
            raise ValueError(f"normalize {self.normalize!r} not in {NORMALIZE_MODES}")
        if self.hidden_size % self.num_heads or self.hidden_size % self.pos_conv_groups:
            raise ValueError(f"hidden_size {self.hidden_size} must divide by num_heads {self.num_heads} and "
                             f"pos_conv_groups {self.pos_conv_groups}")
        if self.remat_policy not in REMAT_POLICIES:
            raise ValueError(f"remat_policy {self.remat_policy!r} not in {sorted(REMAT_POLICIES)}")
        for name in ("main_layers", "multiscale_layers"):
            for v in getattr(self, name):
                if not 0 <= v <= self.num_layers:
                    raise ValueError(f"{name} entry {v} outside 0..num_layers={self.num_layers}")
        if self.num_frames(self.min_samples) < 1:
            raise ValueError(f"min_samples {self.min_samples} is too short for the conv extractor")


def normalize_waveform(wave: jax.Array, mode: str) -> jax.Array:
    """Zero-mean / unit-variance normalisation of ``[B, N]`` waveforms (HF: ``(x - mean)/sqrt(var + 1e-7)``).

    ``per_clip``: statistics per row. ``batch``: statistics over the whole array — REFERENCE DEFECT: the
    reference hands the 2-D ``[B*8, 32000]`` batch to ``Wav2Vec2FeatureExtractor``, which treats it as ONE
    utterance, so a clip's features depend on the other clips in the batch (§2.4, §12 item 3). Kept only to
    reproduce the reference. ``none``: unchanged.
    """
    if mode == "none":
        return wave
    x = wave.astype(jnp.float32)
    axes = (-1,) if mode == "per_clip" else tuple(range(x.ndim))
    if mode not in ("per_clip", "batch"):
        raise ValueError(f"normalize must be one of {NORMALIZE_MODES}, got {mode!r}")
    mean = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + 1e-7)


def pad_to_min_length(wave: jax.Array, min_samples: int) -> jax.Array:
    """Zero-pad ``[B, N]`` at the end to ``min_samples`` when ``N < min_samples`` (as the reference loader)."""
    n = wave.shape[-1]
    if n >= min_samples:
        return wave
    return jnp.pad(wave, [(0, 0)] * (wave.ndim - 1) + [(0, min_samples - n)])


class HubertBlock(nn.Module):
    """Stable-layer-norm block: ``h + attn(ln(h))`` then ``h + ffn(final_ln(h))``. ``[B,T,D] -> [B,T,D]``.

    Scan output ``y``: the block output, time-averaged ``[B, D]`` (or full ``[B, T, D]`` with ``emit_sequence``).
    """

    config: HubertConfig
    emit_sequence: bool = False

    @nn.compact
    def __call__(self, h: jax.Array, _unused=None):
        cfg = self.config
        dt, pdt = jnp.dtype(cfg.dtype), jnp.dtype(cfg.param_dtype)
        x = layer_norm(cfg.layer_norm_eps, dtype=dt, param_dtype=pdt, name="layer_norm")(h)
        x = MultiHeadAttention(num_heads=cfg.num_heads, head_dim=cfg.hidden_size // cfg.num_heads, dtype=dt,
                               param_dtype=pdt, implementation=cfg.attention_impl, name="attention")(x)
        h = constrain(h + x, ("batch", "length", "act_embed"))
        x = layer_norm(cfg.layer_norm_eps, dtype=dt, param_dtype=pdt, name="final_layer_norm")(h)
        x = dense(cfg.mlp_dim, ("embed", "mlp"), dtype=dt, param_dtype=pdt, name="intermediate_dense")(x)
        x = constrain(jax.nn.gelu(x, approximate=False), ("batch", "length", "act_mlp"))
        x = dense(cfg.hidden_size, ("mlp", "embed"), dtype=dt, param_dtype=pdt, name="output_dense")(x)
        h = constrain(h + x, ("batch", "length", "act_embed"))
        y = h if self.emit_sequence else jnp.mean(h.astype(jnp.float32), axis=1)
        return h, y


def _conv(features, kernel, stride, *, groups=1, padding="VALID", use_bias=False, axes, dt, pdt, name):
    return nn.Conv(features, (kernel,), strides=(stride,), padding=padding, feature_group_count=groups,
                   use_bias=use_bias, dtype=dt, param_dtype=pdt,
                   kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), axes),
                   bias_init=nn.with_logical_partitioning(nn.initializers.zeros, (axes[-1],)), name=name)


class ConvFeatureExtractor(nn.Module):
    """Waveform ``[b, N]`` -> conv features ``[b, T, conv_dim[-1]]``.

    Per conv layer j: Conv1D (no bias, VALID, stride s_j) -> LayerNorm over channels -> exact GELU (HF
    ``feat_extract_norm="layer"``). Params ``conv_{j}/kernel [k_j, C_in, C_out]``, ``norm_{j}/{scale,bias}``.
    The 7 layers differ in kernel/stride/input width, so they are not a scan.
    """

    config: HubertConfig

    @nn.compact
    def __call__(self, wave: jax.Array) -> jax.Array:
        cfg = self.config
        dt, pdt = jnp.dtype(cfg.dtype), jnp.dtype(cfg.param_dtype)
        x = wave[..., None]
        for j, (c, k, s) in enumerate(zip(cfg.conv_dim, cfg.conv_kernel, cfg.conv_stride)):
            x = _conv(c, k, s, axes=("conv", "conv_in", "conv_out"), dt=dt, pdt=pdt, name=f"conv_{j}")(x)
            x = layer_norm(cfg.layer_norm_eps, dtype=dt, param_dtype=pdt, name=f"norm_{j}")(x)
            x = jax.nn.gelu(x, approximate=False)
        return x


class Hubert(nn.Module):
    """HuBERT encoder. ``__call__(waveform, layers=None, return_sequences=False, normalize=None)``.

    ``waveform``: ``[B, N]`` (or ``[B, K, N]`` clips, flattened and reshaped back) float, 16 kHz, raw.
    ``layers``: hidden-state indices 0..L (see module doc); default ``main_layers + multiscale_layers``.
    ``normalize``: overrides ``config.normalize`` ("per_clip" | "batch" | "none").
    Returns (float32, leading dims ``[B]`` or ``[B, K]``):
      ``"time_mean"``: ``{i: [..., D]}`` hidden state i averaged over its T frames;
      ``"sequence"``: ``{i: [..., T, D]}`` when ``return_sequences``.
    ``main_feature(out, layers)`` and ``multiscale_feature(out, layers)`` assemble the reference's audio inputs.
    Params: ``feature_extractor/{conv_j, norm_j}``, ``feature_projection_norm``, ``feature_projection``,
    ``pos_conv`` (folded weight-norm kernel ``[K, D/G, D]`` + bias), ``layers/...`` (scanned), ``layer_norm``.
    """

    config: HubertConfig

    @nn.compact
    def __call__(self, waveform: jax.Array, layers: Sequence[int] | None = None, return_sequences: bool = False,
                 normalize: str | None = None) -> dict:
        cfg = self.config
        dt, pdt = jnp.dtype(cfg.dtype), jnp.dtype(cfg.param_dtype)
        if waveform.ndim not in (2, 3):
            raise ValueError(f"Hubert: waveform must be [B, N] or [B, clips, N] samples at {cfg.sample_rate} Hz, "
                             f"got shape {tuple(waveform.shape)}")
        if layers is None:
            layers = (*cfg.main_layers, *cfg.multiscale_layers)
        layers = check_layers(layers, cfg.num_layers, "Hubert")
        lead = waveform.shape[:-1]
        wave = pad_to_min_length(waveform.reshape(-1, waveform.shape[-1]), cfg.min_samples)
        wave = normalize_waveform(wave, normalize or cfg.normalize)

        x = ConvFeatureExtractor(cfg, name="feature_extractor")(wave.astype(dt))
        x = layer_norm(cfg.layer_norm_eps, dtype=dt, param_dtype=pdt, name="feature_projection_norm")(x)
        x = dense(cfg.hidden_size, ("conv_in", "embed"), dtype=dt, param_dtype=pdt, name="feature_projection")(x)
        x = constrain(x, ("batch", "length", "act_embed"))

        # Positional conv: "same" padding K//2 both sides, then HF drops the last output for even K
        # (HubertSamePadLayer) — equivalent to padding (K//2, K//2 - 1).
        kp = cfg.pos_conv_kernel
        pad = (kp // 2, kp // 2 - (1 if kp % 2 == 0 else 0))
        pos = _conv(cfg.hidden_size, kp, 1, groups=cfg.pos_conv_groups, padding=[pad], use_bias=True,
                    axes=("conv", "conv_in", "embed"), dt=dt, pdt=pdt, name="pos_conv")(x)
        h = constrain(x + jax.nn.gelu(pos, approximate=False), ("batch", "length", "act_embed"))

        initializing = self.is_initializing()
        depth = cfg.num_layers if initializing else max(layers)
        per_layer = None
        h_last = h
        if depth > 0:
            h_last, per_layer = sliced_stack(HubertBlock, depth=depth, full_depth=cfg.num_layers,
                                             initializing=initializing, remat=cfg.remat_policy, config=cfg,
                                             emit_sequence=return_sequences, name="layers")(h, None)
        final_ln = layer_norm(cfg.layer_norm_eps, dtype=dt, param_dtype=pdt, name="layer_norm")

        def hidden(i):  # [b, D] time-mean, or [b, T, D]
            if i == cfg.num_layers:  # the reference's last hidden state carries the final LayerNorm
                seq = final_ln(h_last)
                return seq if return_sequences else jnp.mean(seq.astype(jnp.float32), axis=1)
            if i == 0:
                return h if return_sequences else jnp.mean(h.astype(jnp.float32), axis=1)
            return per_layer[i - 1]

        if initializing and cfg.num_layers not in layers:
            final_ln(h_last)  # create the final-LN params even when init asks for intermediate layers only

        def unflatten(a):
            return a.astype(jnp.float32).reshape(lead + a.shape[1:])

        out = {"time_mean": {}}
        if return_sequences:
            out["sequence"] = {}
        for i in layers:
            hs = hidden(i)
            if return_sequences:
                out["sequence"][i] = unflatten(hs)
                hs = jnp.mean(hs.astype(jnp.float32), axis=1)
            out["time_mean"][i] = unflatten(hs)
        return out


def main_feature(out: dict, layers: Sequence[int]) -> jax.Array:
    """Audio-branch feature: mean over ``layers`` (reference: 21..24) of the time-averaged states ``[..., D]``.

    The reference averages the four layers first and then time-averages; both are linear, so the order does
    not change the result.
    """
    return jnp.mean(jnp.stack([out["time_mean"][i] for i in layers], axis=0), axis=0)


def multiscale_feature(out: dict, layers: Sequence[int]) -> jax.Array:
    """Fusion-encoder feature: time-averaged states of ``layers`` (reference 16/18/22) concatenated ``[..., nD]``."""
    return jnp.concatenate([out["time_mean"][i] for i in layers], axis=-1)


__all__ = ("HubertConfig", "Hubert", "HubertBlock", "NORMALIZE_MODES", "normalize_waveform", "pad_to_min_length",
           "main_feature", "multiscale_feature")
