"""``python -m launch.check_parity --kind swin [--hf-dir DIR | --checkpoint FILE]``: Swin stage maps vs PyTorch.

- ``--checkpoint`` (torchvision ``swin_b`` or FaceXFormer ``model.pt``): needs torchvision (0.28.0 matches
  torch 2.13.0; not installed in this project's venv) and compares against ``torchvision.models.swin_b``
  with forward hooks on ``features[1,3,5,7]``, as the reference does.
- ``--hf-dir``: a transformers ``SwinModel`` save_pretrained directory.
- neither: a tiny random transformers ``SwinModel`` built in-process (CPU smoke check).
Returns the max abs difference over the stage outputs (fp32; tolerance 1e-4).
"""

from __future__ import annotations

import numpy as np

DEFAULT_TOLERANCE = 1e-4


def _compare(cfg, params, torch_maps, x_nhwc) -> float:
    import jax
    import jax.numpy as jnp

    from emox_jax.models.swin import Swin

    with jax.default_matmul_precision("highest"):
        ours = jax.jit(Swin(cfg).apply)({"params": params}, jnp.asarray(x_nhwc))
    return max(float(np.max(np.abs(np.asarray(o) - t))) for o, t in zip(ours, torch_maps))


def _hf(model, cfg, x):
    import torch

    outs = []
    hooks = [s.blocks[-1].register_forward_hook(lambda m, i, o: outs.append(o[0] if isinstance(o, tuple) else o))
             for s in model.encoder.layers]
    with torch.no_grad():
        model(pixel_values=torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    for h in hooks:
        h.remove()
    return [o.reshape(o.shape[0], int(round(o.shape[1] ** 0.5)), -1, o.shape[-1]).numpy() for o in outs]


def _hf_cfg(hc):
    from emox_jax.models.swin import SwinConfig

    return SwinConfig(image_size=hc.image_size, patch_size=hc.patch_size, in_channels=hc.num_channels,
                      embed_dim=hc.embed_dim, depths=tuple(hc.depths), num_heads=tuple(hc.num_heads),
                      window_size=hc.window_size, mlp_ratio=hc.mlp_ratio, layer_norm_eps=hc.layer_norm_eps)


def run(args) -> dict:
    import torch

    from emox_jax.convert.io import load_state_dict
    from emox_jax.convert.swin import face_encoder_params_from_state_dict
    from emox_jax.models.face_encoder import FaceEncoderConfig
    from emox_jax.models.swin import SwinConfig

    rng = np.random.default_rng(args.seed)
    if args.checkpoint:
        try:
            import torchvision
        except ImportError:
            raise SystemExit("check_parity --kind swin --checkpoint needs torchvision (0.28.0 matches torch 2.13.0); "
                             "it is not installed - use --hf-dir or no source for the transformers-based check")
        cfg = SwinConfig.swin_b()
        obj = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
        sd = load_state_dict(args.checkpoint, unwrap="state_dict_backbone" if "state_dict_backbone" in obj else None)
        params = face_encoder_params_from_state_dict(sd, FaceEncoderConfig(swin=cfg), require_head=False)["swin"]
        tv = torchvision.models.swin_b().eval()
        tv_sd = {k[len("backbone.0."):] if k.startswith("backbone.0.") else k: torch.from_numpy(v)
                 for k, v in sd.items()}
        tv.features.load_state_dict({k[len("features."):]: v for k, v in tv_sd.items() if k.startswith("features.")})
        outs = []
        for i in (1, 3, 5, 7):
            tv.features[i].register_forward_hook(lambda m, a, o: outs.append(o.detach().numpy()))
        x = rng.normal(size=(args.batch, 224, 224, 3)).astype(np.float32)
        with torch.no_grad():
            tv(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
        source = f"torchvision swin_b {args.checkpoint}"
    else:
        from transformers import SwinConfig as HFSwinConfig, SwinModel

        if args.hf_dir:
            hf = SwinModel.from_pretrained(args.hf_dir, add_pooling_layer=False).eval()
            source = f"transformers SwinModel {args.hf_dir}"
        else:
            torch.manual_seed(args.seed)
            hf = SwinModel(HFSwinConfig(image_size=16, patch_size=2, embed_dim=16, depths=[2, 2], num_heads=[2, 4],
                                        window_size=4), add_pooling_layer=False).eval()
            source = "tiny random transformers SwinModel"
        cfg = _hf_cfg(hf.config)
        sd = {k: v.detach().numpy() for k, v in hf.state_dict().items()}
        params = face_encoder_params_from_state_dict(sd, FaceEncoderConfig(swin=cfg), require_head=False)["swin"]
        x = rng.normal(size=(args.batch, cfg.image_size, cfg.image_size, 3)).astype(np.float32)
        outs = _hf(hf, cfg, x)
    return {"kind": "swin", "source": source, "max_abs_diff": _compare(cfg, params, outs, x),
            "tolerance": DEFAULT_TOLERANCE}
