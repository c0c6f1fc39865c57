"""HF CLIP (``CLIPVisionModel`` or full ``CLIPModel``) save_pretrained directory -> ``ClipVision`` params.

Accepted layouts (all seen in the wild):
- ``CLIPModel`` (openai/clip-vit-large-patch14, what the reference loads): vision keys under ``vision_model.``;
  the text tower, ``text_projection``, ``visual_projection`` and ``logit_scale`` are ignored (never used).
- ``CLIPVisionModel`` saved by transformers 4.x (``vision_model.`` prefix) or 5.x (no prefix).
Weights are transposed from torch's ``[out, in]`` / ``OIHW`` into our ``[in, out]`` / ``HWIO`` and the 24 blocks
are stacked on a leading ``layers`` axis (the scanned layout). Every tensor of the vision tower must be used.

    python -m launch.convert --kind clip --direction to-jax --src HF_DIR --dst OUT_DIR [--dtype bfloat16]
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from emox_jax.convert.io import (CheckpointFormatError, check_all_used, load_hf_config, load_state_dict, take,
                                 stack_layers)
from emox_jax.models.clip_vit import ClipVisionConfig

_HF_ACTS = {"quick_gelu": "quick_gelu", "gelu": "gelu"}
_VISION_MODEL_TYPES = ("clip_vision_model", "clip")


def _default_layers(num_layers: int) -> tuple[int, tuple[int, ...]]:
    """Reference layer picks (23; 12/16/22 of 24) rescaled for shallower towers."""
    if num_layers >= 23:
        return 23, (12, 16, 22)
    scaled = tuple(sorted({max(1, min(num_layers, round(num_layers * k / 24))) for k in (12, 16, 22)}))
    return max(num_layers - 1, 0), scaled


def config_from_hf(hf: dict, where: str = "config.json", **overrides) -> ClipVisionConfig:
    """A ``ClipVisionConfig`` from an HF CLIP ``config.json`` dict (vision part); ``overrides`` win."""
    model_type = hf.get("model_type")
    if model_type not in _VISION_MODEL_TYPES:
        raise CheckpointFormatError(f"{where}: expected a CLIP checkpoint (model_type one of "
                                    f"{_VISION_MODEL_TYPES}), got model_type={model_type!r}")
    v = (hf.get("vision_config") or {}) if model_type == "clip" else hf
    if model_type == "clip" and not v:
        raise CheckpointFormatError(f"{where}: CLIPModel config without a vision_config")
    # Defaults for keys HF omits when equal to its own defaults (ViT-B/32-style CLIPVisionConfig defaults).
    act = v.get("hidden_act", "quick_gelu")
    if act not in _HF_ACTS:
        raise CheckpointFormatError(f"{where}: vision hidden_act {act!r} not supported (expected one of "
                                    f"{sorted(_HF_ACTS)})")
    num_layers = int(v.get("num_hidden_layers", 12))
    frame_layer, multiscale = _default_layers(num_layers)
    kwargs = dict(image_size=int(v.get("image_size", 224)), patch_size=int(v.get("patch_size", 32)),
                  num_channels=int(v.get("num_channels", 3)), hidden_size=int(v.get("hidden_size", 768)),
                  num_layers=num_layers, num_heads=int(v.get("num_attention_heads", 12)),
                  mlp_dim=int(v.get("intermediate_size", 3072)), activation=_HF_ACTS[act],
                  layer_norm_eps=float(v.get("layer_norm_eps", 1e-5)), frame_layer=frame_layer,
                  multiscale_layers=multiscale)
    kwargs.update(overrides)
    cfg = ClipVisionConfig(**kwargs)
    cfg.validate()
    return cfg


def _prefix(sd: dict[str, np.ndarray], where: str) -> str:
    for p in ("vision_model.", ""):
        if f"{p}embeddings.patch_embedding.weight" in sd:
            return p
    sample = sorted(sd)[:6]
    raise CheckpointFormatError(f"{where}: not a CLIP vision checkpoint: expected tensor "
                                f"'vision_model.embeddings.patch_embedding.weight' (CLIPModel) or "
                                f"'embeddings.patch_embedding.weight' (CLIPVisionModel); found e.g. {sample}")


def convert_state_dict(sd: dict[str, np.ndarray], cfg: ClipVisionConfig, where: str = "checkpoint") -> dict:
    """HF CLIP tensors -> the (unboxed, numpy) param tree of ``ClipVision(cfg)``.

    Raises TensorMismatchError naming any tensor that is missing, mis-shaped or left over.
    """
    p = _prefix(sd, where)
    d, m, c, ps = cfg.hidden_size, cfg.mlp_dim, cfg.num_channels, cfg.patch_size
    nh, hd, L = cfg.num_heads, cfg.hidden_size // cfg.num_heads, cfg.num_layers
    used: set[str] = set()

    def t(name, shape):
        return take(sd, p + name, shape, where=where, used=used)

    def stack(name, shape, transform=None):
        return stack_layers(sd, p + "encoder.layers.{}." + name, L, shape, where=where, used=used,
                            transform=transform)

    def ln(name):
        return {"scale": t(f"{name}.weight", (d,)), "bias": t(f"{name}.bias", (d,))}

    def stacked_ln(name):
        return {"scale": stack(f"{name}.weight", (d,)), "bias": stack(f"{name}.bias", (d,))}

    def qkv(name):  # torch [out=N*H, in] -> ours [in, N, H]
        return {"kernel": stack(f"self_attn.{name}.weight", (d, d), lambda w: w.T.reshape(d, nh, hd)),
                "bias": stack(f"self_attn.{name}.bias", (d,), lambda b: b.reshape(nh, hd))}

    params = {
        "patch_embedding": {"kernel": t("embeddings.patch_embedding.weight", (d, c, ps, ps)).transpose(2, 3, 1, 0)},
        "class_embedding": t("embeddings.class_embedding", (d,)),
        "position_embedding": t("embeddings.position_embedding.weight", (cfg.num_tokens, d)),
        "pre_layrnorm": ln("pre_layrnorm"),
        "post_layernorm": ln("post_layernorm"),
        "layers": {
            "layer_norm1": stacked_ln("layer_norm1"),
            "layer_norm2": stacked_ln("layer_norm2"),
            "self_attn": {
                "query": qkv("q_proj"), "key": qkv("k_proj"), "value": qkv("v_proj"),
                "out": {"kernel": stack("self_attn.out_proj.weight", (d, d), lambda w: w.T.reshape(nh, hd, d)),
                        "bias": stack("self_attn.out_proj.bias", (d,))},
            },
            "fc1": {"kernel": stack("mlp.fc1.weight", (m, d), lambda w: w.T), "bias": stack("mlp.fc1.bias", (m,))},
            "fc2": {"kernel": stack("mlp.fc2.weight", (d, m), lambda w: w.T), "bias": stack("mlp.fc2.bias", (d,))},
        },
    }
    # Leftovers allowed: the text tower and projections of a CLIPModel, and non-persistent position_ids buffers
    # that old transformers versions saved.
    ignore = (r"^text_model\.", r"^text_projection\.", r"^visual_projection\.", r"^logit_scale$", r"position_ids$")
    check_all_used(sd, used, ignore, where=where)
    return _as_float32(params)


def _as_float32(tree):
    if isinstance(tree, dict):
        return {k: _as_float32(v) for k, v in tree.items()}
    return np.ascontiguousarray(tree, dtype=np.float32)


def load_clip_vision(path, **overrides) -> tuple[ClipVisionConfig, dict]:
    """Read an HF CLIP save_pretrained directory -> ``(ClipVisionConfig, params)`` (numpy, fp32).

    ``overrides`` replace config fields (e.g. ``dtype="bfloat16"``, ``frame_layer=...``).
    """
    path = Path(path)
    hf = load_hf_config(path)
    cfg = config_from_hf(hf, where=str(path / "config.json"), **overrides)
    return cfg, convert_state_dict(load_state_dict(path), cfg, where=str(path))


def save_converted(out_dir, params: dict, cfg) -> Path:
    """Our format (as ``convert/qwen2.py``): ``OUT/config.json`` (config fields) + ``OUT/params`` (Orbax)."""
    import orbax.checkpoint as ocp

    out = Path(out_dir).absolute()
    out.mkdir(parents=True, exist_ok=True)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(out / "params", params, force=True)
        ckptr.wait_until_finished()
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=1))
    return out


def load_converted(path, config_cls=ClipVisionConfig):
    """Inverse of ``save_converted`` -> ``(config, params)``; ``config_cls`` is ClipVisionConfig / HubertConfig."""
    import orbax.checkpoint as ocp

    from emox_jax.config_utils import from_config

    path = Path(path).absolute()
    if not (path / "config.json").exists() or not (path / "params").exists():
        raise FileNotFoundError(f"{path}: expected config.json and params/ (written by launch.convert to-jax)")
    cfg = from_config(config_cls, json.loads((path / "config.json").read_text()), where=f"{path}/config.json")
    with ocp.StandardCheckpointer() as ckptr:
        params = ckptr.restore(path / "params")
    return cfg, params


def run_convert_cli(args, kind: str, load_fn) -> dict:
    """Shared ``convert_cli`` body for the frozen encoders (HF -> ours only: they are never trained)."""
    direction = getattr(args, "direction", "to-jax")
    if direction != "to-jax":
        raise SystemExit(f"launch.convert --kind {kind}: only --direction to-jax is supported (the encoder is "
                         f"frozen, so there is nothing to export), got {direction!r}")
    src = getattr(args, "src", None) or getattr(args, "hf_dir", None)
    dst = getattr(args, "dst", None) or getattr(args, "out", None)
    if not src or not dst:
        raise SystemExit(f"launch.convert --kind {kind} needs --src HF_DIR (save_pretrained dir) and --dst OUT_DIR")
    dtype = getattr(args, "dtype", None)
    cfg, params = load_fn(src, **({"param_dtype": dtype} if dtype else {}))
    if dtype:
        import ml_dtypes

        np_dtype = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
        params = _tree_map(lambda a: a.astype(np_dtype), params)
    out = save_converted(dst, params, cfg)
    n = sum(int(np.prod(a.shape)) for a in _leaves(params))
    return {"kind": kind, "direction": "to-jax", "dst": str(out), "num_params": n}


def convert_cli(args) -> dict:
    """``python -m launch.convert --kind clip --direction to-jax --src HF_DIR --dst OUT [--dtype bfloat16]``."""
    return run_convert_cli(args, "clip", load_clip_vision)


def load_jax(path) -> tuple[ClipVisionConfig, dict]:
    """Read a directory written by ``convert_cli`` -> ``(ClipVisionConfig, params)``."""
    return load_converted(path, ClipVisionConfig)


def _tree_map(fn, tree):
    if isinstance(tree, dict):
        return {k: _tree_map(fn, v) for k, v in tree.items()}
    return fn(tree)


def _leaves(tree):
    if isinstance(tree, dict):
        for v in tree.values():
            yield from _leaves(v)
    else:
        yield tree


__all__ = ("config_from_hf", "convert_state_dict", "load_clip_vision", "save_converted", "load_converted",
           "convert_cli", "load_jax")
