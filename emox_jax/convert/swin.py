"""Swin-B / FaceXFormer weights -> ``Swin`` / ``FaceEncoder`` params (``emox_jax.models.swin``, ``face_encoder``).

Accepted state-dict layouts (detected from the key names; a ``module.`` DDP prefix is stripped):
- torchvision ``swin_b`` (``features.0.0.weight`` ... ``norm.*``, ``head.*``): backbone only;
- FaceXFormer (``{"state_dict_backbone": ...}``, backbone = ``nn.Sequential(*swin_b.children()[:-1])`` so the
  keys are ``backbone.0.<torchvision features>``, ``backbone.1.*`` = the unused final norm) with the
  multi-scale head ``linear_c.{i}.proj.*`` and ``linear_fuse.weight``; the face decoder (``face_decoder.*``,
  ``pe_layer.*``) is ignored; Nano-EmoX's ``facial_encoder.facexformer.`` prefix is stripped too;
- transformers ``SwinModel`` (``embeddings.patch_embeddings.projection.*``, ``encoder.layers.{i}.blocks.{j}.*``,
  optionally under ``swin.``): used by the CPU parity test while torchvision is not installed.

Every tensor is shape-checked (``io.take``), every left-over tensor is an error except the ones named in
the ignore lists (final norm, classifier head, ``relative_position_index`` buffers - which are checked to
equal ours - and the FaceXFormer decoder). A checkpoint of another architecture (Swin v2 ``logit_scale``/
``cpb_mlp`` keys, other widths or depths) fails with a message naming what was expected.

CLI: ``python -m launch.convert --kind swin --checkpoint FILE --output DIR [--preset swin_b|tiny]``.
"""

from __future__ import annotations

import re

import numpy as np

from emox_jax.convert.io import CheckpointFormatError, check_all_used, load_state_dict, take
from emox_jax.models.face_encoder import FaceEncoderConfig
from emox_jax.models.swin import SwinConfig, relative_position_index

_STRIP_PREFIXES = ("module.", "facial_encoder.facexformer.", "facexformer.")


def _strip(sd: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    for p in _STRIP_PREFIXES:
        if sd and all(k.startswith(p) for k in sd):
            sd = {k[len(p):]: v for k, v in sd.items()}
    return sd


def detect_layout(sd: dict[str, np.ndarray]) -> tuple[str, str]:
    """``(layout, prefix)``: layout in {"torchvision", "facexformer", "hf"}; ``prefix`` precedes the backbone keys."""
    if any("logit_scale" in k or "cpb_mlp" in k for k in sd):
        raise CheckpointFormatError("this is a Swin v2 checkpoint (logit_scale / cpb_mlp keys); expected Swin v1 "
                                    "(torchvision swin_b / FaceXFormer)")
    if "backbone.0.0.0.weight" in sd:
        return "facexformer", "backbone.0."
    if "features.0.0.weight" in sd:
        return "torchvision", "features."
    for p in ("", "swin."):
        if f"{p}embeddings.patch_embeddings.projection.weight" in sd:
            return "hf", p
    sample = sorted(sd)[:6]
    raise CheckpointFormatError("not a Swin checkpoint: expected torchvision keys 'features.0.0.weight', FaceXFormer "
                                "'backbone.0.0.0.weight' or transformers 'embeddings.patch_embeddings.projection.weight'"
                                f"; found keys like {sample}")


def _lin(w: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(w.T)


def _names(layout: str, prefix: str, stage: int, block: int) -> dict[str, str]:
    if layout == "hf":  # transformers >= 5 names (q_proj/o_proj, mlp.fc1/fc2; index buffer not persisted)
        b = f"{prefix}encoder.layers.{stage}.blocks.{block}."
        return dict(norm1=b + "layernorm_before", norm2=b + "layernorm_after", q=b + "attention.q_proj",
                    k=b + "attention.k_proj", v=b + "attention.v_proj",
                    table=b + "attention.relative_position_bias.relative_position_bias_table",
                    index=b + "attention.relative_position_bias.relative_position_index",
                    proj=b + "attention.o_proj", fc1=b + "mlp.fc1", fc2=b + "mlp.fc2")
    b = f"{prefix}{2 * stage + 1}.{block}."
    return dict(norm1=b + "norm1", norm2=b + "norm2", qkv=b + "attn.qkv", table=b + "attn.relative_position_bias_table",
                index=b + "attn.relative_position_index", proj=b + "attn.proj", fc1=b + "mlp.0", fc2=b + "mlp.3")


def _block(sd, layout, prefix, cfg: SwinConfig, stage: int, block: int, used: set, where: str) -> dict:
    n = _names(layout, prefix, stage, block)
    dim, heads, w = cfg.stage_dim(stage), cfg.num_heads[stage], cfg.window_size
    hd = dim // heads
    t = lambda name, shape: take(sd, name, shape, where=where, used=used)  # noqa: E731
    if layout == "hf":
        ws = [t(n[x] + ".weight", (dim, dim)) for x in "qkv"]
        bs = [t(n[x] + ".bias", (dim,)) for x in "qkv"]
        qkv_w, qkv_b = np.concatenate(ws, 0), np.concatenate(bs, 0)
    else:
        qkv_w, qkv_b = t(n["qkv"] + ".weight", (3 * dim, dim)), t(n["qkv"] + ".bias", (3 * dim,))
    idx_name = n["index"]
    if idx_name in sd:
        got = np.asarray(sd[idx_name]).reshape(-1)
        if not np.array_equal(got, relative_position_index(w).reshape(-1)):
            raise CheckpointFormatError(f"{where}: buffer {idx_name!r} differs from the window-{w} relative position "
                                        "index this model computes (different window size?)")
        used.add(idx_name)
    hidden = int(dim * cfg.mlp_ratio)
    return {
        "norm1": {"scale": t(n["norm1"] + ".weight", (dim,)), "bias": t(n["norm1"] + ".bias", (dim,))},
        "qkv": {"kernel": _lin(qkv_w).reshape(dim, 3, heads, hd), "bias": qkv_b.reshape(3, heads, hd)},
        "relative_position_bias_table": t(n["table"], ((2 * w - 1) ** 2, heads)),
        "proj": {"kernel": _lin(t(n["proj"] + ".weight", (dim, dim))).reshape(heads, hd, dim),
                 "bias": t(n["proj"] + ".bias", (dim,))},
        "norm2": {"scale": t(n["norm2"] + ".weight", (dim,)), "bias": t(n["norm2"] + ".bias", (dim,))},
        "fc1": {"kernel": _lin(t(n["fc1"] + ".weight", (hidden, dim))), "bias": t(n["fc1"] + ".bias", (hidden,))},
        "fc2": {"kernel": _lin(t(n["fc2"] + ".weight", (dim, hidden))), "bias": t(n["fc2"] + ".bias", (dim,))},
    }


def _stack(trees: list[dict]) -> dict:
    if isinstance(trees[0], dict):
        return {k: _stack([t[k] for t in trees]) for k in trees[0]}
    return np.stack(trees, axis=0)


def _check_depths(sd, layout, prefix, cfg: SwinConfig, where: str) -> None:
    pat = (re.compile(rf"^{re.escape(prefix)}encoder\.layers\.(\d+)\.blocks\.(\d+)\.") if layout == "hf"
           else re.compile(rf"^{re.escape(prefix)}(\d+)\.(\d+)\.norm1\.weight$"))
    blocks: dict[int, set] = {}
    for k in sd:
        m = pat.match(k)
        if m:
            s = int(m.group(1)) if layout == "hf" else (int(m.group(1)) - 1) // 2
            blocks.setdefault(s, set()).add(int(m.group(2)))
    depths = tuple(len(blocks[s]) for s in sorted(blocks))
    if depths != tuple(cfg.depths):
        raise CheckpointFormatError(f"{where}: checkpoint has Swin stage depths {depths} but the model expects "
                                    f"{tuple(cfg.depths)} (embed {cfg.embed_dim}, heads {tuple(cfg.num_heads)})")


def swin_params_from_state_dict(sd: dict[str, np.ndarray], cfg: SwinConfig, *, layout: str, prefix: str,
                                used: set, where: str = "checkpoint") -> dict:
    """Backbone tensors -> the ``Swin`` param tree (plain numpy arrays, scanned layout)."""
    _check_depths(sd, layout, prefix, cfg, where)
    t = lambda name, shape: take(sd, name, shape, where=where, used=used)  # noqa: E731
    e, p, ci = cfg.embed_dim, cfg.patch_size, cfg.in_channels
    if layout == "hf":
        conv, norm = f"{prefix}embeddings.patch_embeddings.projection", f"{prefix}embeddings.norm"
    else:
        conv, norm = f"{prefix}0.0", f"{prefix}0.2"
    params = {
        "patch_embed": {"kernel": np.ascontiguousarray(t(conv + ".weight", (e, ci, p, p)).transpose(2, 3, 1, 0)),
                        "bias": t(conv + ".bias", (e,))},
        "patch_norm": {"scale": t(norm + ".weight", (e,)), "bias": t(norm + ".bias", (e,))},
    }
    for s, depth in enumerate(cfg.depths):
        blocks = [_block(sd, layout, prefix, cfg, s, j, used, where) for j in range(depth)]
        params[f"stage{s}"] = {"even": _stack(blocks[0::2]), "odd": _stack(blocks[1::2])}
        if s < cfg.num_stages - 1:
            d = cfg.stage_dim(s)
            m = f"{prefix}encoder.layers.{s}.downsample" if layout == "hf" else f"{prefix}{2 * s + 2}"
            params[f"merge{s}"] = {
                "norm": {"scale": t(m + ".norm.weight", (4 * d,)), "bias": t(m + ".norm.bias", (4 * d,))},
                "reduction": {"kernel": _lin(t(m + ".reduction.weight", (2 * d, 4 * d)))},
            }
    return params


# Tensors a Swin/FaceXFormer checkpoint may hold that the model does not use.
IGNORED = (r"^(features\.|backbone\.0\.)?norm\.", r"^head\.", r"^backbone\.1\.", r"^face_decoder\.", r"^pe_layer\.",
           r"(^|\.)layernorm\.(weight|bias)$", r"^(swin\.)?pooler\.", r"^classifier\.")


def face_encoder_params_from_state_dict(sd: dict[str, np.ndarray], cfg: FaceEncoderConfig,
                                        where: str = "checkpoint", require_head: bool = True) -> dict:
    """A FaceXFormer (or torchvision / HF Swin) state dict -> ``FaceEncoder`` params ``{"swin", "head"}``.

    Without the FaceXFormer head in the checkpoint (plain torchvision Swin) ``require_head=False`` returns
    only ``{"swin": ...}`` (the caller keeps the head's init).
    """
    sd = _strip(dict(sd))
    layout, prefix = detect_layout(sd)
    used: set[str] = set()
    out = {"swin": swin_params_from_state_dict(sd, cfg.swin, layout=layout, prefix=prefix, used=used, where=where)}
    if "linear_fuse.weight" in sd:
        h = cfg.head_dim
        head = {}
        for i in range(cfg.swin.num_stages):
            c = cfg.swin.stage_dim(i)
            head[f"linear_c{i}"] = {"kernel": _lin(take(sd, f"linear_c.{i}.proj.weight", (h, c), where=where, used=used)),
                                    "bias": take(sd, f"linear_c.{i}.proj.bias", (h,), where=where, used=used)}
        fuse = take(sd, "linear_fuse.weight", (h, h * cfg.swin.num_stages, 1, 1), where=where, used=used)
        head["linear_fuse"] = {"kernel": np.ascontiguousarray(fuse[:, :, 0, 0].T)}
        out["head"] = head
    elif require_head:
        raise CheckpointFormatError(f"{where}: no FaceXFormer head ('linear_fuse.weight', 'linear_c.N.proj.*'); "
                                    "pass require_head=False to load a backbone-only Swin checkpoint")
    check_all_used(sd, used, IGNORED, where=where)
    return out


def swin_params_from_file(path: str, cfg: SwinConfig) -> dict:
    """A torchvision / FaceXFormer / HF Swin checkpoint file -> ``Swin`` params."""
    sd = load_state_dict(path, unwrap="state_dict_backbone") if _is_facexformer_file(path) else load_state_dict(path)
    return face_encoder_params_from_state_dict(sd, FaceEncoderConfig(swin=cfg), where=str(path),
                                               require_head=False)["swin"]


def _is_facexformer_file(path: str) -> bool:
    if not str(path).endswith((".pt", ".pth", ".bin", ".ckpt")):
        return False
    import torch

    obj = torch.load(str(path), map_location="cpu", weights_only=True)
    return isinstance(obj, dict) and "state_dict_backbone" in obj


def face_encoder_params_from_file(path: str, cfg: FaceEncoderConfig) -> dict:
    """FaceXFormer ``model.pt`` (``state_dict_backbone``) -> ``FaceEncoder`` params."""
    unwrap = "state_dict_backbone" if _is_facexformer_file(path) else None
    return face_encoder_params_from_state_dict(load_state_dict(path, unwrap=unwrap), cfg, where=str(path))


def convert_cli(args) -> dict:
    """``launch.convert --kind swin``: ``args.checkpoint`` (or ``args.hf_dir``) -> Orbax params at ``args.output``.

    Writes ``{"params": FaceEncoder params}`` (FaceXFormer checkpoints) or ``{"params": Swin params}``
    (backbone-only checkpoints). ``args.preset`` picks ``swin_b`` (default) or ``tiny``.
    """
    import orbax.checkpoint as ocp
    from pathlib import Path

    src = getattr(args, "checkpoint", None) or getattr(args, "hf_dir", None)
    out = getattr(args, "output", None) or getattr(args, "out_dir", None)
    if not src or not out:
        raise SystemExit("convert --kind swin needs --checkpoint FILE (or --hf-dir DIR) and --output DIR")
    preset = getattr(args, "preset", None) or "swin_b"
    cfg = FaceEncoderConfig.facexformer() if preset in ("swin_b", "facexformer") else FaceEncoderConfig.tiny()
    unwrap = "state_dict_backbone" if _is_facexformer_file(src) else None
    sd = load_state_dict(src, unwrap=unwrap)
    params = face_encoder_params_from_state_dict(sd, cfg, where=str(src), require_head=False)
    tree = params if "head" in params else params["swin"]
    ckpt = ocp.StandardCheckpointer()
    ckpt.save(Path(out).absolute(), {"params": tree}, force=True)
    ckpt.wait_until_finished()
    n = sum(int(np.prod(a.shape)) for a in _leaves(tree))
    return {"kind": "swin", "output": str(out), "num_params": n, "has_head": "head" in params}


def _leaves(tree):
    if isinstance(tree, dict):
        for v in tree.values():
            yield from _leaves(v)
    else:
        yield tree
