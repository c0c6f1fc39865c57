"""HF ``HubertModel`` save_pretrained directory (e.g. TencentGameMate/chinese-hubert-large) -> ``Hubert`` params.

The positional conv is weight-normalised in PyTorch. Checkpoints store it in one of three ways, all accepted:
``conv.weight_g`` / ``conv.weight_v`` (``nn.utils.weight_norm``: chinese-hubert-large and most hub files),
``conv.parametrizations.weight.original0`` / ``original1`` (``nn.utils.parametrizations.weight_norm``:
what transformers 5.x writes), or an already folded ``conv.weight``. We store the folded weight
``w = g * v / ||v||`` (norm over all dims but the kernel axis, ``dim=2``), transposed to ``[K, D/G, D]``.
Keys may carry a ``hubert.`` prefix (``HubertForCTC`` / ``HubertForSequenceClassification`` dirs); task heads
and ``masked_spec_embed`` (used only for training-time masking) are ignored.

    python -m launch.convert --kind hubert --direction to-jax --src HF_DIR --dst OUT_DIR [--dtype bfloat16]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emox_jax.convert.clip import _as_float32, load_converted, run_convert_cli
from emox_jax.convert.io import (CheckpointFormatError, TensorMismatchError, check_all_used, load_hf_config,
                                 load_state_dict, stack_layers, take)
from emox_jax.models.hubert import HubertConfig


def _default_layers(num_layers: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Reference picks (21..24 averaged; 16/18/22) for 24 layers, rescaled for shallower encoders."""
    if num_layers >= 24:
        return (num_layers - 3, num_layers - 2, num_layers - 1, num_layers), (16, 18, 22)
    main = tuple(range(max(1, num_layers - 3), num_layers + 1))
    scaled = tuple(sorted({max(1, min(num_layers, round(num_layers * k / 24))) for k in (16, 18, 22)}))
    return main, scaled


def config_from_hf(hf: dict, where: str = "config.json", **overrides) -> HubertConfig:
    """A ``HubertConfig`` from an HF HuBERT ``config.json`` dict; ``overrides`` win.

    Raises CheckpointFormatError for other architectures or HuBERT variants we do not implement (the
    base-size "group" feature norm / post-LN encoder, conv bias).
    """
    model_type = hf.get("model_type")
    if model_type != "hubert":
        raise CheckpointFormatError(f"{where}: expected a HuBERT checkpoint (model_type 'hubert'), "
                                    f"got model_type={model_type!r}")
    # HF HubertConfig defaults are the base model's; a config.json omits keys equal to them.
    norm = hf.get("feat_extract_norm", "group")
    stable = bool(hf.get("do_stable_layer_norm", False))
    if norm != "layer" or not stable or hf.get("conv_bias", False):
        raise CheckpointFormatError(
            f"{where}: only HuBERT-Large-style encoders are supported (feat_extract_norm='layer', "
            f"do_stable_layer_norm=True, conv_bias=False); got feat_extract_norm={norm!r}, "
            f"do_stable_layer_norm={stable}, conv_bias={hf.get('conv_bias', False)}")
    for key in ("hidden_act", "feat_extract_activation"):
        if hf.get(key, "gelu") != "gelu":
            raise CheckpointFormatError(f"{where}: {key}={hf[key]!r} not supported (expected 'gelu')")
    if hf.get("conv_pos_batch_norm", False):
        raise CheckpointFormatError(f"{where}: conv_pos_batch_norm=True not supported (expected weight norm)")
    num_layers = int(hf.get("num_hidden_layers", 12))
    main, multiscale = _default_layers(num_layers)
    kwargs = dict(conv_dim=tuple(hf.get("conv_dim", (512,) * 7)), conv_kernel=tuple(hf.get("conv_kernel",
                  (10, 3, 3, 3, 3, 2, 2))), conv_stride=tuple(hf.get("conv_stride", (5, 2, 2, 2, 2, 2, 2))),
                  hidden_size=int(hf.get("hidden_size", 768)), num_layers=num_layers,
                  num_heads=int(hf.get("num_attention_heads", 12)), mlp_dim=int(hf.get("intermediate_size", 3072)),
                  pos_conv_kernel=int(hf.get("num_conv_pos_embeddings", 128)),
                  pos_conv_groups=int(hf.get("num_conv_pos_embedding_groups", 16)),
                  layer_norm_eps=float(hf.get("layer_norm_eps", 1e-5)), main_layers=main,
                  multiscale_layers=multiscale)
    kwargs.update(overrides)
    cfg = HubertConfig(**kwargs)
    cfg.validate()
    return cfg


def _prefix(sd: dict[str, np.ndarray], where: str) -> str:
    for p in ("", "hubert."):
        if f"{p}feature_extractor.conv_layers.0.conv.weight" in sd:
            return p
    raise CheckpointFormatError(f"{where}: not a HuBERT checkpoint: expected tensor "
                                f"'feature_extractor.conv_layers.0.conv.weight'; found e.g. {sorted(sd)[:6]}")


def fold_weight_norm(g: np.ndarray, v: np.ndarray, dim: int = 2) -> np.ndarray:
    """``torch._weight_norm(v, g, dim)``: ``g * v / ||v||`` with the norm over every axis except ``dim``."""
    axes = tuple(a for a in range(v.ndim) if a != dim)
    v64 = v.astype(np.float64)
    norm = np.sqrt(np.sum(v64 * v64, axis=axes, keepdims=True))
    return (g.astype(np.float64) * v64 / norm).astype(np.float32)


def _pos_conv_weight(sd, p, shape, where, used) -> np.ndarray:
    base = f"{p}encoder.pos_conv_embed.conv."
    g_shape = (1, 1, shape[2])
    for g_name, v_name in (("weight_g", "weight_v"),
                           ("parametrizations.weight.original0", "parametrizations.weight.original1")):
        if base + g_name in sd:
            g = take(sd, base + g_name, g_shape, where=where, used=used)
            v = take(sd, base + v_name, shape, where=where, used=used)
            return fold_weight_norm(g, v, dim=2)
    if base + "weight" in sd:
        return take(sd, base + "weight", shape, where=where, used=used)
    raise TensorMismatchError(f"{where}: missing the positional conv weight: expected {base}weight_g/weight_v, "
                              f"{base}parametrizations.weight.original0/original1 or {base}weight")


def convert_state_dict(sd: dict[str, np.ndarray], cfg: HubertConfig, where: str = "checkpoint") -> dict:
    """HF HuBERT tensors -> the (unboxed, numpy fp32) param tree of ``Hubert(cfg)``."""
    p = _prefix(sd, where)
    d, m, nh, L = cfg.hidden_size, cfg.mlp_dim, cfg.num_heads, cfg.num_layers
    hd, c_last = d // nh, cfg.conv_dim[-1]
    used: set[str] = set()

    def t(name, shape):
        return take(sd, p + name, shape, where=where, used=used)

    def ln(name, width):
        return {"scale": t(f"{name}.weight", (width,)), "bias": t(f"{name}.bias", (width,))}

    def stack(name, shape, transform=None):
        return stack_layers(sd, p + "encoder.layers.{}." + name, L, shape, where=where, used=used,
                            transform=transform)

    def stacked_ln(name):
        return {"scale": stack(f"{name}.weight", (d,)), "bias": stack(f"{name}.bias", (d,))}

    def qkv(name):
        return {"kernel": stack(f"attention.{name}.weight", (d, d), lambda w: w.T.reshape(d, nh, hd)),
                "bias": stack(f"attention.{name}.bias", (d,), lambda b: b.reshape(nh, hd))}

    fe, c_in = {}, 1
    for j, (c, k) in enumerate(zip(cfg.conv_dim, cfg.conv_kernel)):
        w = t(f"feature_extractor.conv_layers.{j}.conv.weight", (c, c_in, k))
        fe[f"conv_{j}"] = {"kernel": w.transpose(2, 1, 0)}
        fe[f"norm_{j}"] = ln(f"feature_extractor.conv_layers.{j}.layer_norm", c)
        c_in = c
    pos_w = _pos_conv_weight(sd, p, (d, d // cfg.pos_conv_groups, cfg.pos_conv_kernel), where, used)
    params = {
        "feature_extractor": fe,
        "feature_projection_norm": ln("feature_projection.layer_norm", c_last),
        "feature_projection": {"kernel": t("feature_projection.projection.weight", (d, c_last)).T,
                               "bias": t("feature_projection.projection.bias", (d,))},
        "pos_conv": {"kernel": pos_w.transpose(2, 1, 0), "bias": t("encoder.pos_conv_embed.conv.bias", (d,))},
        "layers": {
            "layer_norm": stacked_ln("layer_norm"),
            "final_layer_norm": stacked_ln("final_layer_norm"),
            "attention": {
                "query": qkv("q_proj"), "key": qkv("k_proj"), "value": qkv("v_proj"),
                "out": {"kernel": stack("attention.out_proj.weight", (d, d), lambda w: w.T.reshape(nh, hd, d)),
                        "bias": stack("attention.out_proj.bias", (d,))},
            },
            "intermediate_dense": {"kernel": stack("feed_forward.intermediate_dense.weight", (m, d), lambda w: w.T),
                                   "bias": stack("feed_forward.intermediate_dense.bias", (m,))},
            "output_dense": {"kernel": stack("feed_forward.output_dense.weight", (d, m), lambda w: w.T),
                             "bias": stack("feed_forward.output_dense.bias", (d,))},
        },
        "layer_norm": ln("encoder.layer_norm", d),
    }
    # masked_spec_embed: training-time masking only. Task heads of HubertFor* classes are not the encoder.
    ignore = (r"masked_spec_embed$", r"^lm_head\.", r"^projector\.", r"^classifier\.", r"^layer_weights$")
    check_all_used(sd, used, ignore, where=where)
    return _as_float32(params)


def load_hubert(path, **overrides) -> tuple[HubertConfig, dict]:
    """Read an HF HuBERT save_pretrained directory -> ``(HubertConfig, params)`` (numpy, fp32)."""
    path = Path(path)
    hf = load_hf_config(path)
    cfg = config_from_hf(hf, where=str(path / "config.json"), **overrides)
    return cfg, convert_state_dict(load_state_dict(path), cfg, where=str(path))


def convert_cli(args) -> dict:
    """``python -m launch.convert --kind hubert --direction to-jax --src HF_DIR --dst OUT [--dtype bfloat16]``."""
    return run_convert_cli(args, "hubert", load_hubert)


def load_jax(path) -> tuple[HubertConfig, dict]:
    """Read a directory written by ``convert_cli`` -> ``(HubertConfig, params)``."""
    return load_converted(path, HubertConfig)


__all__ = ("config_from_hf", "convert_state_dict", "fold_weight_norm", "load_hubert", "convert_cli", "load_jax")
