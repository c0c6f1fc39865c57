"""The reference's own Nano-EmoX checkpoint (``{"model": state_dict}`` of the trainable modules) -> adapter params.

Reference attribute names (``models/nano_emox.py``, ``faceXencoder.py``, ``MoE_fusion.py``) -> our modules:

| reference tensors | ours (``convert_reference_state_dict`` result key) |
|---|---|
| ``video_Qformer.bert.*``, ``video_query_tokens``, ``video_frame_position_embedding.weight`` | ``video_qformer`` (``QFormer``) |
| ``video_proj.*`` | ``video_proj`` (``Projector``) |
| ``audio_Qformer.bert.*``, ``audio_query_tokens``, ``audio_position_embedding.weight`` | ``audio_qformer`` |
| ``audio_llama_proj.*`` | ``audio_proj`` |
| ``facial_encoder.query``, ``facial_encoder.attn.{in_proj_*,out_proj.*}``, ``facial_encoder.face_proj.{0,3}.*`` | ``face_pooling`` (``FacePooling``) |
| ``multi_multiscale_fusion.*`` + ``multi_llama_proj.*`` | ``fusion`` (``FusionEncoder``, kind ``multiscale``) |

Ignored on purpose: buffers (``*.position_ids``, ``*.relative_position_index``), dead parameters
(``image_llama_proj``, ``multi_audio_embs``/``multi_video_embs`` in multiscale mode, the never-applied
``facial_encoder.lynorm``), frozen backbones if a full state dict is given (``llama_model`` base weights,
``visual_encoder``, ``acoustic_encoder``, ``facial_encoder.facexformer``). LoRA tensors
(``llama_model.*lora_A*``/``lora_B*``) are returned untouched under ``"lora"`` for the LM converter.
Phase checkpoints hold only some groups (1.1: audio + facial pooling; 1.2: video + face); a group is
converted when its tensors are present, and a half-present group is an error naming the missing tensor.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from emox_jax.convert.io import check_all_used, load_state_dict, take
from emox_jax.convert.qformer import qformer_params_from_state_dict
from emox_jax.models.face_encoder import FacePoolingConfig
from emox_jax.models.fusion import FusionConfig
from emox_jax.models.projectors import ProjectorConfig
from emox_jax.models.qformer import QFormerConfig


@dataclasses.dataclass(frozen=True)
class ReferenceAdapterConfigs:
    video_qformer: QFormerConfig = QFormerConfig.video()
    audio_qformer: QFormerConfig = QFormerConfig.audio()
    video_proj: ProjectorConfig = ProjectorConfig.video()
    audio_proj: ProjectorConfig = ProjectorConfig.audio()
    face_pooling: FacePoolingConfig = FacePoolingConfig()
    fusion: FusionConfig = FusionConfig.multiscale()


IGNORED = (r"position_ids$", r"relative_position_index$", r"^image_llama_proj\.", r"^multi_audio_embs\.",
           r"^multi_video_embs\.", r"^facial_encoder\.lynorm\.", r"^facial_encoder\.facexformer\.",
           r"^visual_encoder\.", r"^acoustic_encoder\.", r"^llama_model\.")


def _linear(sd, name: str, in_dim: int, out_dim: int, used, where) -> dict:
    return {"kernel": np.ascontiguousarray(take(sd, name + ".weight", (out_dim, in_dim), where=where, used=used).T),
            "bias": take(sd, name + ".bias", (out_dim,), where=where, used=used)}


def torch_mha(sd, name: str, dim: int, heads: int, used, where) -> dict:
    """``nn.MultiheadAttention`` (packed ``in_proj``) -> ``Attention`` params ``query/key/value/out``."""
    hd = dim // heads
    w = take(sd, name + ".in_proj_weight", (3 * dim, dim), where=where, used=used)
    b = take(sd, name + ".in_proj_bias", (3 * dim,), where=where, used=used)
    out = {}
    for i, k in enumerate(("query", "key", "value")):
        out[k] = {"kernel": np.ascontiguousarray(w[i * dim:(i + 1) * dim].T).reshape(dim, heads, hd),
                  "bias": b[i * dim:(i + 1) * dim].reshape(heads, hd)}
    ow = take(sd, name + ".out_proj.weight", (dim, dim), where=where, used=used)
    out["out"] = {"kernel": np.ascontiguousarray(ow.T).reshape(heads, hd, dim),
                  "bias": take(sd, name + ".out_proj.bias", (dim,), where=where, used=used)}
    return out


def _projector(sd, name: str, c: ProjectorConfig, used, where, mlp_indices=(0, 3)) -> dict:
    if c.hidden_dim == 0:
        return {"fc": _linear(sd, name, c.in_dim, c.out_dim, used, where)}
    i, j = mlp_indices
    return {"fc1": _linear(sd, f"{name}.{i}", c.in_dim, c.hidden_dim, used, where),
            "fc2": _linear(sd, f"{name}.{j}", c.hidden_dim, c.out_dim, used, where)}


def face_pooling_params(sd, c: FacePoolingConfig, used, where, prefix: str = "facial_encoder.") -> dict:
    return {"query": take(sd, prefix + "query", (c.num_queries, c.dim), where=where, used=used),
            "attn": torch_mha(sd, prefix + "attn", c.dim, c.num_heads, used, where),
            "face_proj": _projector(sd, prefix + "face_proj", c.proj, used, where)}


def multiscale_fusion_params(sd, c: FusionConfig, used, where, prefix: str = "multi_multiscale_fusion.") -> dict:
    h, s = c.hidden_dim, c.num_scales
    experts = []
    for i in range(s):
        experts.append({
            "cross_attn": torch_mha(sd, f"{prefix}cross_attns.{i}", h, c.num_heads, used, where),
            "ffn_norm": {"scale": take(sd, f"{prefix}ffns.{i}.0.weight", (h,), where=where, used=used),
                         "bias": take(sd, f"{prefix}ffns.{i}.0.bias", (h,), where=where, used=used)},
            "ffn_in": _linear(sd, f"{prefix}ffns.{i}.1", h, h, used, where),
            "ffn_out": _linear(sd, f"{prefix}ffns.{i}.4", h, h, used, where),
        })
    stack = lambda trees: ({k: stack([t[k] for t in trees]) for k in trees[0]}  # noqa: E731
                           if isinstance(trees[0], dict) else np.stack(trees))
    return {"fusion": {
        "audio_proj": _linear(sd, prefix + "audio_proj", c.audio_dim, h, used, where),
        "visual_proj": _linear(sd, prefix + "visual_proj", c.visual_dim, h, used, where),
        "experts": stack(experts),
        "gate_in": _linear(sd, prefix + "gate_mlp.0", s * h, h, used, where),
        "gate_out": _linear(sd, prefix + "gate_mlp.3", h, s, used, where),
        "multi_llama_proj": _linear(sd, "multi_llama_proj", h, c.out_dim, used, where),
    }}


def _present(sd, *prefixes: str) -> bool:
    return any(k.startswith(p) for k in sd for p in prefixes)


def convert_reference_state_dict(sd: dict[str, np.ndarray], cfgs: ReferenceAdapterConfigs = ReferenceAdapterConfigs(),
                                 where: str = "reference checkpoint") -> dict:
    """``{name: array}`` of a Nano-EmoX checkpoint -> ``{group: params}`` for the groups present (+ ``"lora"``)."""
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    used: set[str] = set()
    out: dict = {}
    if _present(sd, "video_Qformer.", "video_query_tokens"):
        out["video_qformer"] = qformer_params_from_state_dict(
            sd, cfgs.video_qformer, prefix="video_Qformer.", scheme="lavis", query_key="video_query_tokens",
            pos_key="video_frame_position_embedding.weight", used=used, where=where)
    if _present(sd, "video_proj."):
        out["video_proj"] = _projector(sd, "video_proj", cfgs.video_proj, used, where)
    if _present(sd, "audio_Qformer.", "audio_query_tokens"):
        out["audio_qformer"] = qformer_params_from_state_dict(
            sd, cfgs.audio_qformer, prefix="audio_Qformer.", scheme="lavis", query_key="audio_query_tokens",
            pos_key="audio_position_embedding.weight", used=used, where=where)
    if _present(sd, "audio_llama_proj."):
        out["audio_proj"] = _projector(sd, "audio_llama_proj", cfgs.audio_proj, used, where)
    if _present(sd, "facial_encoder.query", "facial_encoder.attn.", "facial_encoder.face_proj."):
        out["face_pooling"] = face_pooling_params(sd, cfgs.face_pooling, used, where)
    if _present(sd, "multi_multiscale_fusion."):
        if cfgs.fusion.kind != "multiscale":
            raise ValueError(f"{where}: checkpoint holds a multiscale fusion but fusion.kind={cfgs.fusion.kind!r}")
        out["fusion"] = multiscale_fusion_params(sd, cfgs.fusion, used, where)
    lora = {k: v for k, v in sd.items() if k.startswith("llama_model.") and re.search(r"lora_[AB]", k)}
    if lora:
        out["lora"] = lora
        used.update(lora)
    check_all_used(sd, used, IGNORED, where=where)
    if not (set(out) - {"lora"}):
        raise ValueError(f"{where}: no Nano-EmoX adapter tensors found (expected names like 'video_Qformer.*', "
                         f"'audio_llama_proj.*', 'facial_encoder.query', 'multi_multiscale_fusion.*'); "
                         f"keys look like {sorted(sd)[:5]}")
    return out


def convert_reference_checkpoint(path: str, cfgs: ReferenceAdapterConfigs = ReferenceAdapterConfigs()) -> dict:
    """A reference ``checkpoint_*.pth`` (``{"model": state_dict, "optimizer": ..., ...}``) -> adapter params."""
    return convert_reference_state_dict(load_state_dict(path, unwrap="model"), cfgs, where=str(path))
