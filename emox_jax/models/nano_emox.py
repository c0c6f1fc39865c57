"""Nano-EmoX: four perception branches + the Qwen2 decoder, as one pure Linen function (spec §1-§4).

    frames [B, T, S, S, 3] uint8 ─ CLIP (frozen) ─ CLS h[frame_layer] [B,T,Dv] ─ video Q-Former ─ video_proj ─ [B,Nf,D]
                               └─ CLS h[12,16,22] [B,T,3Dv] ───────────────────────────┐
                               └─ FaceEncoder (frozen Swin+head) [B,T,Df] ─ FacePooling ─ [B,Nface,D]
    audio [B, C, N] float ── HuBERT (frozen) ─ mean h[21..24], time-mean [B,C,Da] ─ audio Q-Former ─ audio_proj ─ [B,Na,D]
                               └─ time-mean h[16,18,22] [B,C,3Da] ─ multiscale fusion (+multi_llama_proj) ─ [B,1,D]
    input_ids [B, L] ─ embed ─ splice the modality tokens at *_pos ─ Qwen2 decoder ─ logits [B, L, V] (fp32)

Param tree (top-level names; frozen / trainable per phase in ``configs/p2e.py``):
``decoder`` (Qwen2ForCausalLM, with ``lora_a``/``lora_b``), ``clip`` (ClipVision), ``hubert`` (Hubert),
``face_encoder`` (``swin`` + ``head``), ``video_qformer``, ``video_proj``, ``audio_qformer``, ``audio_proj``,
``face_pooling`` (``query``, ``attn``, ``face_proj``), ``fusion`` (``fusion/...`` incl. ``multi_llama_proj``).

``modalities`` (a static tuple, e.g. ``("audio",)`` in phase 1a) chooses which branches run: the others are
not traced at all (their params may be absent from the tree passed to ``apply``). Rows whose ``*_pos`` is -1
keep their text embeddings. Frozen backbones' outputs pass through ``jax.lax.stop_gradient`` so nothing is
differentiated inside them; the trainer additionally differentiates only w.r.t. the trainable sub-tree, so no
weight gradient of a frozen param is ever formed. ``features=`` takes those outputs precomputed
(``backbone_features``; the trainer's per-clip cache, ``emox_jax.train.frozen_features``), and then the
backbones do not run at all.

Differences from the reference, on purpose: placeholder positions come from the pipeline (no search, no
assertions at run time); the face encoder receives ImageNet-normalised pixels (the reference feeds raw 0..255,
§12 item 1; ``face.pixel_mode="reference_raw"`` reproduces it); audio is normalised per clip.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from emox_jax.models.clip_vit import ClipVision, ClipVisionConfig, clip_preprocess
from emox_jax.models.face_encoder import FaceEncoder, FaceEncoderConfig, FacePooling, FacePoolingConfig
from emox_jax.models.fusion import FusionConfig, FusionEncoder
from emox_jax.models.hubert import Hubert, HubertConfig, main_feature, multiscale_feature
from emox_jax.models.projectors import Projector, ProjectorConfig
from emox_jax.models.qformer import QFormer, QFormerConfig
from emox_jax.models.qwen2 import Qwen2Config, Qwen2ForCausalLM
from emox_jax.models.splice import splice_rows

MODALITIES = ("multi", "audio", "face", "frame")  # prompt order (spec §3.1)
BACKBONES = ("decoder", "clip", "hubert", "face_encoder")
ADAPTERS = ("video_qformer", "video_proj", "audio_qformer", "audio_proj", "face_pooling", "fusion")


@dataclasses.dataclass(frozen=True)
class NanoEmoXConfig:
    """Every sub-config plus the token counts and which branches exist. ``dtype`` = compute dtype applied to all
    parts by ``with_dtype`` (trainable params stay fp32; ``backbone_param_dtype`` may store frozen ones in bf16)."""

    llm: Qwen2Config = Qwen2Config()
    clip: ClipVisionConfig = ClipVisionConfig()
    hubert: HubertConfig = HubertConfig()
    face: FaceEncoderConfig = FaceEncoderConfig()
    face_pooling: FacePoolingConfig = FacePoolingConfig()
    video_qformer: QFormerConfig = QFormerConfig.video()
    audio_qformer: QFormerConfig = QFormerConfig.audio()
    video_proj: ProjectorConfig = ProjectorConfig.video()
    audio_proj: ProjectorConfig = ProjectorConfig.audio()
    fusion: FusionConfig = FusionConfig()
    frame_tokens: int = 32
    audio_tokens: int = 32
    face_tokens: int = 4
    multi_tokens: int = 1

    def validate(self) -> None:
        for sub in (self.llm, self.clip, self.hubert, self.face, self.face_pooling, self.video_qformer,
                    self.audio_qformer, self.video_proj, self.audio_proj, self.fusion):
            sub.validate()
        d = self.llm.hidden_size

        def need(ok, msg):
            if not ok:
                raise ValueError(f"NanoEmoXConfig: {msg}")

        need(self.video_qformer.encoder_width == self.clip.hidden_size,
             f"video_qformer.encoder_width {self.video_qformer.encoder_width} != clip.hidden_size "
             f"{self.clip.hidden_size}")
        need(self.audio_qformer.encoder_width == self.hubert.hidden_size,
             f"audio_qformer.encoder_width {self.audio_qformer.encoder_width} != hubert.hidden_size "
             f"{self.hubert.hidden_size}")
        need(self.video_qformer.num_queries == self.frame_tokens,
             f"video_qformer.num_queries {self.video_qformer.num_queries} != frame_tokens {self.frame_tokens}")
        need(self.audio_qformer.num_queries == self.audio_tokens,
             f"audio_qformer.num_queries {self.audio_qformer.num_queries} != audio_tokens {self.audio_tokens}")
        need(self.face_pooling.num_queries == self.face_tokens,
             f"face_pooling.num_queries {self.face_pooling.num_queries} != face_tokens {self.face_tokens}")
        need(self.fusion.num_tokens == self.multi_tokens,
             f"fusion.num_tokens {self.fusion.num_tokens} != multi_tokens {self.multi_tokens}")
        need(self.face_pooling.dim == self.face.head_dim,
             f"face_pooling.dim {self.face_pooling.dim} != face.head_dim {self.face.head_dim}")
        for name, width in (("video_proj.in_dim", self.video_proj.in_dim), ("audio_proj.in_dim", self.audio_proj.in_dim)):
            qf = self.video_qformer if name.startswith("video") else self.audio_qformer
            need(width == qf.hidden_size, f"{name} {width} != Q-Former hidden {qf.hidden_size}")
        for name, out in (("video_proj", self.video_proj.out_dim), ("audio_proj", self.audio_proj.out_dim),
                          ("face_pooling.proj", self.face_pooling.proj.out_dim), ("fusion", self.fusion.out_dim)):
            need(out == d, f"{name} out_dim {out} != llm.hidden_size {d}")
        need(self.fusion.kind == "multiscale", f"fusion.kind {self.fusion.kind!r}: NanoEmoX wires the multiscale "
             "fusion (CLIP 12/16/22 + HuBERT 16/18/22 features)")
        need(self.fusion.visual_dim == self.clip.hidden_size and self.fusion.audio_dim == self.hubert.hidden_size,
             "fusion audio_dim/visual_dim must equal hubert/clip hidden sizes")
        need(len(self.clip.multiscale_layers) == self.fusion.num_scales == len(self.hubert.multiscale_layers),
             "clip/hubert multiscale_layers and fusion.num_scales must agree")
        need(self.face.swin.image_size == self.clip.image_size,
             f"face.swin.image_size {self.face.swin.image_size} != clip.image_size {self.clip.image_size} "
             "(both read the same frames)")

    def replace(self, **kw) -> "NanoEmoXConfig":
        return dataclasses.replace(self, **kw)

    def with_dtype(self, dtype: str, backbone_param_dtype: str | None = None) -> "NanoEmoXConfig":
        """Set the compute dtype of every part (and optionally the storage dtype of the frozen backbones)."""
        bb = {} if backbone_param_dtype is None else {"param_dtype": backbone_param_dtype}
        face = dataclasses.replace(self.face, swin=dataclasses.replace(self.face.swin, dtype=dtype, **bb))
        return dataclasses.replace(
            self, llm=self.llm.replace(dtype=dtype, **bb), clip=dataclasses.replace(self.clip, dtype=dtype, **bb),
            hubert=dataclasses.replace(self.hubert, dtype=dtype, **bb), face=face,
            face_pooling=dataclasses.replace(self.face_pooling, dtype=dtype,
                                             proj=dataclasses.replace(self.face_pooling.proj, dtype=dtype)),
            video_qformer=dataclasses.replace(self.video_qformer, dtype=dtype),
            audio_qformer=dataclasses.replace(self.audio_qformer, dtype=dtype),
            video_proj=dataclasses.replace(self.video_proj, dtype=dtype),
            audio_proj=dataclasses.replace(self.audio_proj, dtype=dtype),
            fusion=dataclasses.replace(self.fusion, dtype=dtype))

    def with_remat(self, policy: str) -> "NanoEmoXConfig":
        """The remat policy for every scanned stack (decoder, CLIP, HuBERT, Swin, Q-Formers)."""
        face = dataclasses.replace(self.face, swin=dataclasses.replace(self.face.swin, remat=policy))
        return dataclasses.replace(
            self, llm=self.llm.replace(remat_policy=policy), clip=dataclasses.replace(self.clip, remat_policy=policy),
            hubert=dataclasses.replace(self.hubert, remat_policy=policy), face=face,
            video_qformer=dataclasses.replace(self.video_qformer, remat=policy),
            audio_qformer=dataclasses.replace(self.audio_qformer, remat=policy))

    def with_attention(self, impl: str | None) -> "NanoEmoXConfig":
        """One attention implementation (layers/attention.py) for the decoder, CLIP and HuBERT."""
        return dataclasses.replace(self, llm=self.llm.replace(attention_impl=impl),
                                   clip=dataclasses.replace(self.clip, attention_impl=impl),
                                   hubert=dataclasses.replace(self.hubert, attention_impl=impl))

    @property
    def token_counts(self) -> dict[str, int]:
        return {"frame": self.frame_tokens, "face": self.face_tokens, "audio": self.audio_tokens,
                "multi": self.multi_tokens}


def check_modalities(modalities: Sequence[str]) -> tuple[str, ...]:
    bad = [m for m in modalities if m not in MODALITIES]
    if bad:
        raise ValueError(f"unknown modalities {bad}; valid: {MODALITIES}")
    return tuple(m for m in MODALITIES if m in modalities)


# Frozen-backbone outputs (``NanoEmoX.backbone_features``) and the raw input each is computed from.
FEATURE_SOURCE = {"clip_cls": "frames", "face_feat": "frames", "hubert_mean": "audio"}


def feature_keys(modalities: Sequence[str]) -> tuple[str, ...]:
    """The backbone features ``modalities`` read: CLIP for frame/multi, the face encoder for face, HuBERT for
    audio/multi."""
    mods = set(check_modalities(modalities))
    need = {"clip_cls": bool({"frame", "multi"} & mods), "face_feat": "face" in mods,
            "hubert_mean": bool({"audio", "multi"} & mods)}
    return tuple(k for k, n in need.items() if n)


def backbone_layers(config: NanoEmoXConfig) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(CLIP layers, HuBERT layers) whose outputs any branch reads, sorted: the layer axis of ``clip_cls`` /
    ``hubert_mean``. The towers run up to the deepest one either way, so extracting them all costs nothing."""
    c = config
    return (tuple(sorted({c.clip.frame_layer, *c.clip.multiscale_layers})),
            tuple(sorted({*c.hubert.main_layers, *c.hubert.multiscale_layers})))


class NanoEmoX(nn.Module):
    """``__call__(input_ids [B,L], *, frames [B,T,S,S,3]?, audio [B,C,N]?, positions [B,L]?, segment_ids [B,L]?,
    starts {modality: [B] int}, modalities=(...), deterministic=True) -> logits [B, L, V] fp32``.

    ``embed_inputs(...)`` returns the spliced ``inputs_embeds [B, L, D]`` (the generation path feeds them to
    ``emox_jax.infer.generate_from_embeds`` with ``params["decoder"]``). ``init`` creates every branch.
    """

    config: NanoEmoXConfig

    def setup(self):
        c = self.config
        self.decoder = Qwen2ForCausalLM(c.llm)
        self.clip = ClipVision(c.clip)
        self.hubert = Hubert(c.hubert)
        self.face_encoder = FaceEncoder(c.face)
        self.video_qformer = QFormer(c.video_qformer)
        self.video_proj = Projector(c.video_proj)
        self.audio_qformer = QFormer(c.audio_qformer)
        self.audio_proj = Projector(c.audio_proj)
        self.face_pooling = FacePooling(c.face_pooling)
        self.fusion = FusionEncoder(c.fusion)

    # ------------------------------------------------------------------------------------------- branches
    def backbone_features(self, frames: jax.Array | None, audio: jax.Array | None, modalities: Sequence[str],
                          given: Mapping[str, jax.Array] | None = None) -> dict[str, jax.Array]:
        """The frozen backbones' outputs the ``modalities`` read (``feature_keys``), stacked per layer:

        ``clip_cls [B, nLv, T, Dv]`` (CLS of ``backbone_layers(config)[0]``), ``face_feat [B, T, Df]``,
        ``hubert_mean [B, nLa, C, Da]`` (time-mean states of ``backbone_layers(config)[1]``). Features in ``given``
        (e.g. from ``emox_jax.train.frozen_features``) are used as they are and their backbone does not run.
        """
        c = self.config
        mods = check_modalities(modalities)
        given = dict(given or {})
        need = feature_keys(mods)
        for name, x, nd in (("frames", frames, 5), ("audio", audio, 3)):
            if any(k not in given and FEATURE_SOURCE[k] == name for k in need) and (x is None or x.ndim != nd):
                raise ValueError(f"NanoEmoX: modalities {mods} need {name} with {nd} dims (or precomputed "
                                 f"{[k for k in need if FEATURE_SOURCE[k] == name]}), got "
                                 f"{None if x is None else tuple(x.shape)}")
        clip_layers, hubert_layers = backbone_layers(c)
        out: dict[str, jax.Array] = {}
        # Frozen backbones: stop_gradient so no backward pass runs through them.
        for k in need:
            if k in given:
                out[k] = given[k]
            elif k == "clip_cls":
                v = self.clip(clip_preprocess(frames, c.clip.image_size), layers=clip_layers)["cls"]
                out[k] = jax.lax.stop_gradient(jnp.stack([v[i] for i in clip_layers], axis=1))
            elif k == "hubert_mean":
                a = self.hubert(audio, layers=hubert_layers)["time_mean"]
                out[k] = jax.lax.stop_gradient(jnp.stack([a[i] for i in hubert_layers], axis=1))
            else:
                out[k] = jax.lax.stop_gradient(self.face_encoder(frames, deterministic=True))
        return out

    def encode(self, frames: jax.Array | None, audio: jax.Array | None, modalities: Sequence[str],
               deterministic: bool = True, features: Mapping[str, jax.Array] | None = None) -> dict[str, jax.Array]:
        """``{modality: [B, N_m, D]}`` for the requested modalities (compute dtype). ``features``: precomputed
        frozen-backbone outputs (``backbone_features``), used instead of running those backbones."""
        c = self.config
        mods = check_modalities(modalities)
        feats = self.backbone_features(frames, audio, mods, given=features)
        clip_layers, hubert_layers = backbone_layers(c)
        if "clip_cls" in feats:
            v = {layer: feats["clip_cls"][:, i] for i, layer in enumerate(clip_layers)}
        if "hubert_mean" in feats:
            a = {"time_mean": {layer: feats["hubert_mean"][:, i] for i, layer in enumerate(hubert_layers)}}
        out: dict[str, jax.Array] = {}
        if "frame" in mods:
            q = self.video_qformer(v[c.clip.frame_layer], deterministic=deterministic)
            out["frame"] = self.video_proj(q, deterministic=deterministic)
        if "audio" in mods:
            q = self.audio_qformer(main_feature(a, c.hubert.main_layers), deterministic=deterministic)
            out["audio"] = self.audio_proj(q, deterministic=deterministic)
        if "face" in mods:
            out["face"] = self.face_pooling(feats["face_feat"], deterministic=deterministic)
        if "multi" in mods:
            vis = jnp.concatenate([v[i] for i in c.clip.multiscale_layers], axis=-1)
            out["multi"] = self.fusion(multiscale_feature(a, c.hubert.multiscale_layers), vis,
                                       deterministic=deterministic)
        return out

    def embed_inputs(self, input_ids: jax.Array, *, frames=None, audio=None, starts: Mapping[str, jax.Array],
                     modalities: Sequence[str], deterministic: bool = True,
                     features: Mapping[str, jax.Array] | None = None) -> jax.Array:
        """Token embeddings with every requested modality's tokens written at its ``starts[m]`` ``[B, L, D]``."""
        c = self.config
        # Placeholder ids may lie outside a small vocabulary; they are overwritten anyway (the reference zeroes
        # them before the lookup), so clamp to a valid row instead of gathering out of range.
        ids = jnp.clip(input_ids, 0, c.llm.vocab_size - 1)
        x = self.decoder.embed(ids)
        feats = self.encode(frames, audio, modalities, deterministic, features)
        for m in check_modalities(modalities):
            if m not in starts:
                raise ValueError(f"NanoEmoX: no start positions for modality {m!r} (have {sorted(starts)})")
            x = splice_rows(x, feats[m], starts[m])
        return x

    def __call__(self, input_ids: jax.Array, *, frames=None, audio=None, positions=None, segment_ids=None,
                 starts: Mapping[str, jax.Array] | None = None, modalities: Sequence[str] = MODALITIES,
                 deterministic: bool = True, features: Mapping[str, jax.Array] | None = None) -> jax.Array:
        x = self.embed_inputs(input_ids, frames=frames, audio=audio, starts=starts or {}, modalities=modalities,
                              deterministic=deterministic, features=features)
        return self.decoder(inputs_embeds=x, positions=positions, segment_ids=segment_ids,
                            deterministic=deterministic)


def dummy_inputs(config: NanoEmoXConfig, batch: int = 1, length: int = 128, num_frames: int = 8,
                 num_clips: int = 8, clip_samples: int | None = None) -> dict[str, Any]:
    """Shape-only inputs for ``init`` / ``eval_shape`` (all branches run)."""
    c = config
    n = clip_samples or c.hubert.min_samples
    s = c.clip.image_size
    starts, pos = {}, 1
    for m in MODALITIES:
        starts[m] = jnp.full((batch,), pos, jnp.int32)
        pos += c.token_counts[m]
    if pos > length:
        raise ValueError(f"dummy_inputs: length {length} < {pos} modality tokens")
    return dict(input_ids=jnp.zeros((batch, length), jnp.int32),
                frames=jnp.zeros((batch, num_frames, s, s, 3), jnp.uint8),
                audio=jnp.zeros((batch, num_clips, n), jnp.float32), starts=starts, modalities=MODALITIES)


def init_params(config: NanoEmoXConfig, rng: jax.Array, **dummy_kw) -> Any:
    """Boxed (logically partitioned) params of every branch."""
    model = NanoEmoX(config)
    return model.init({"params": rng, "dropout": rng}, **dummy_inputs(config, **dummy_kw))["params"]


def abstract_params(config: NanoEmoXConfig, **dummy_kw) -> Any:
    """``jax.eval_shape`` of ``init_params``: the boxed param tree as ShapeDtypeStructs, nothing allocated."""
    return jax.eval_shape(lambda r: init_params(config, r, **dummy_kw), jax.random.key(0))


__all__ = ("ADAPTERS", "BACKBONES", "FEATURE_SOURCE", "MODALITIES", "NanoEmoX", "NanoEmoXConfig", "abstract_params",
           "backbone_layers", "check_modalities", "dummy_inputs", "feature_keys", "init_params")
