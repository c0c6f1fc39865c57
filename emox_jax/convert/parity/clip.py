"""Parity kind ``clip``: HF ``CLIPVisionModel`` / ``CLIPModel`` dir vs ``ClipVision`` on the same random pixels.

    python -m launch.check_parity --kind clip --hf-dir DIR [--batch B --seed S --dtype float32|bfloat16]

Compares every hidden state (0..L, all tokens; HF ``hidden_states`` indexing) and the pooled output.
``--seq-len`` does not apply (the image size comes from the checkpoint's config).
"""

from __future__ import annotations

import numpy as np

DEFAULT_TOLERANCE = 1e-4
BF16_TOLERANCE = 0.1  # bf16 compute (8 mantissa bits) vs the fp32 reference, on O(1) activations


def _load_torch_vision(hf_dir):
    import json
    from pathlib import Path

    from transformers import CLIPModel, CLIPVisionModel

    model_type = json.loads((Path(hf_dir) / "config.json").read_text()).get("model_type")
    if model_type == "clip":
        return CLIPModel.from_pretrained(hf_dir).vision_model.eval()
    return CLIPVisionModel.from_pretrained(hf_dir).eval()


def run(args) -> dict:
    import jax
    import torch

    from emox_jax.convert.clip import load_clip_vision
    from emox_jax.models.clip_vit import ClipVision

    if not args.hf_dir:
        raise SystemExit("check_parity --kind clip needs --hf-dir (a CLIPVisionModel/CLIPModel save_pretrained dir)")
    cfg, params = load_clip_vision(args.hf_dir, dtype=args.dtype)
    rng = np.random.default_rng(args.seed)
    pixels = rng.standard_normal((args.batch, cfg.image_size, cfg.image_size, cfg.num_channels)).astype(np.float32)

    model = ClipVision(cfg)
    layers = tuple(range(cfg.num_layers + 1))
    with jax.default_matmul_precision("highest"):
        ours = jax.jit(lambda p, x: model.apply({"params": p}, x, layers=layers, return_tokens=True, pooled=True))(
            params, pixels)

    torch_model = _load_torch_vision(args.hf_dir)
    with torch.no_grad():
        ref = torch_model(torch.from_numpy(pixels.transpose(0, 3, 1, 2)), output_hidden_states=True)
    diffs = {f"hidden_{i}": float(np.max(np.abs(np.asarray(ours["tokens"][i]) - ref.hidden_states[i].numpy())))
             for i in layers}
    diffs["pooled"] = float(np.max(np.abs(np.asarray(ours["pooled"]) - ref.pooler_output.numpy())))
    return {"kind": "clip", "max_abs_diff": max(diffs.values()), "per_output": diffs,
            "tolerance": DEFAULT_TOLERANCE if args.dtype == "float32" else BF16_TOLERANCE,
            "shape": [args.batch, cfg.image_size, cfg.image_size, cfg.num_channels], "dtype": args.dtype,
            "num_layers": cfg.num_layers}
