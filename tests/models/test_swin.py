"""Swin backbone: architecture parity with transformers' ``SwinModel`` (fp32), drop-path switch, bad input.

Why transformers and not torchvision: torchvision is not installed beside torch 2.13.0 in this venv (the
matching wheel would be torchvision 0.28.0; we do not add it). transformers' ``SwinModel`` implements the
same Swin v1 maths (pre-LN window attention, relative position bias, -100 shifted-window mask, no shift when a
window covers the map, patch merging order x0,x1,x2,x3 + LN + bias-free reduction), so it checks the
architecture; the torchvision *key mapping* is checked in ``tests/convert/test_swin_convert.py`` by re-expressing
this same HF model's weights under torchvision names.

CI cost: XLA compiles dominate these tests, so one tiny ``FaceEncoder`` (Swin + FaceXFormer head, built from a
random transformers ``SwinModel`` plus torch head weights) is compiled and run once (``tiny_face_run``); its
captured Swin stage maps serve the Swin parity test here, its features the facial-encoder parity test, and
its outputs the single-device side of the eight-device test in ``tests/models/test_face_encoder.py``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emox_jax.convert.swin import face_encoder_params_from_state_dict
from emox_jax.models.face_encoder import IMAGENET_MEAN, IMAGENET_STD, FaceEncoder, FaceEncoderConfig
from emox_jax.models.swin import Swin, SwinConfig, relative_position_index, shifted_window_mask


# These programs are tiny: XLA's LLVM optimisation costs far more CPU than it saves at run time, and it does not
# change the maths (fp32 results agree to ~1 ulp), so the tests compile at backend optimisation level 0.
quick_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


def hf_tiny_swin(cfg: SwinConfig, seed: int = 0):
    from transformers import SwinConfig as HFSwinConfig, SwinModel

    torch.manual_seed(seed)
    hf = SwinModel(HFSwinConfig(image_size=cfg.image_size, patch_size=cfg.patch_size, num_channels=cfg.in_channels,
                                embed_dim=cfg.embed_dim, depths=list(cfg.depths), num_heads=list(cfg.num_heads),
                                window_size=cfg.window_size, mlp_ratio=cfg.mlp_ratio, drop_path_rate=0.0,
                                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0), add_pooling_layer=False)
    # Random (non-zero) relative position tables and LN affine params so the test can see them.
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "relative_position_bias_table" in name or "norm" in name:
                p.add_(0.2 * torch.randn_like(p))
    return hf.eval()


def hf_stage_outputs(hf, pixels_nchw: torch.Tensor) -> list[np.ndarray]:
    """Outputs of the last block of each stage (before merging), as NHWC numpy."""
    outs = []
    hooks = [stage.blocks[-1].register_forward_hook(lambda m, i, o: outs.append(o[0] if isinstance(o, tuple) else o))
             for stage in hf.encoder.layers]
    with torch.no_grad():
        hf(pixel_values=pixels_nchw)
    for h in hooks:
        h.remove()
    res = []
    for o in outs:
        b, n, c = o.shape
        r = int(round(n ** 0.5))
        res.append(o.reshape(b, r, r, c).numpy())
    return res


def torch_facexformer_head(stage_maps_nhwc, linears, fuse_w):
    """FaceXFormer's multi-scale fusion written from the spec: Linear->256, upsample, reverse concat, 1x1, GAP."""
    size = stage_maps_nhwc[0].shape[1:3]
    ups = []
    for fmap, (w, b) in zip(stage_maps_nhwc, linears):
        h = torch.from_numpy(fmap) @ w.T + b  # [N, H, W, 256]
        ups.append(F.interpolate(h.permute(0, 3, 1, 2), size=size, mode="bilinear", align_corners=False))
    fused = F.conv2d(torch.cat(ups[::-1], dim=1), fuse_w)
    return fused.mean(dim=(2, 3)).numpy()


def face_apply_fn(cfg: FaceEncoderConfig):
    """Jitted ``(variables, frames) -> (features [B, T, h], Swin stage maps)`` (maps captured, not recomputed)."""
    model = FaceEncoder(cfg)

    def run(variables, frames):
        feats, state = model.apply(variables, frames, capture_intermediates=lambda m, _: isinstance(m, Swin),
                                   mutable=["intermediates"])
        return feats, state["intermediates"]["swin"]["__call__"][0]

    return quick_jit(run)


@functools.cache
def tiny_face_run() -> dict:
    """The shared tiny facial encoder: torch reference outputs and ours, computed once per test session.

    Config: ``SwinConfig.tiny`` (16x16 images, 2 stages of depth 2: 8x8 with shifted windows, then 4x4 = one
    window, no shift) with ``drop_path_rate=0.5`` (ignored when deterministic: the default fixes the reference
    defect, so this must equal the eval-mode torch model), ImageNet pixel normalisation (the default) on
    ``frames [8, 2, 16, 16, 3]`` of 0..255 values (batch 8 so the eight-device test can shard it).
    """
    cfg = FaceEncoderConfig(swin=SwinConfig.tiny(drop_path_rate=0.5), head_dim=16)
    hf = hf_tiny_swin(cfg.swin, seed=3)
    torch.manual_seed(4)
    h, n = cfg.head_dim, cfg.swin.num_stages
    linears = [(torch.randn(h, cfg.swin.stage_dim(i)) * 0.1, torch.randn(h) * 0.1) for i in range(n)]
    fuse_w = torch.randn(h, h * n, 1, 1) * 0.1
    sd = {k: v.detach().numpy() for k, v in hf.state_dict().items()}
    for i, (w, b) in enumerate(linears):
        sd[f"linear_c.{i}.proj.weight"], sd[f"linear_c.{i}.proj.bias"] = w.numpy(), b.numpy()
    sd["linear_fuse.weight"] = fuse_w.numpy()
    params = face_encoder_params_from_state_dict(sd, cfg)
    frames = np.random.default_rng(5).uniform(0, 255, size=(8, 2, 16, 16, 3)).astype(np.float32)
    # ImageNet normalisation written out independently of preprocess_pixels
    pixels = ((frames.reshape(16, 16, 16, 3) / 255.0 - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD))
    pixels = pixels.astype(np.float32)
    want_maps = hf_stage_outputs(hf, torch.from_numpy(pixels.transpose(0, 3, 1, 2).copy()))
    want_feats = torch_facexformer_head(want_maps, linears, fuse_w).reshape(8, 2, h)
    apply = face_apply_fn(cfg)
    with jax.default_matmul_precision("highest"):
        feats, maps = apply({"params": params}, jnp.asarray(frames))
    return dict(cfg=cfg, hf=hf, sd=sd, params=params, frames=frames, pixels=pixels, want_maps=want_maps,
                want_feats=want_feats, feats=np.asarray(feats), maps=[np.asarray(m) for m in maps], apply=apply)


@pytest.mark.slow
def test_swin_matches_transformers_swin():
    r = tiny_face_run()
    got, want = r["maps"], r["want_maps"]
    assert [g.shape for g in got] == [w.shape for w in want] == [(16, 8, 8, 16), (16, 4, 4, 32)]
    for i, (g, w) in enumerate(zip(got, want)):
        diff = float(np.max(np.abs(g - w)))
        assert diff <= 1e-4, f"stage {i}: max abs diff {diff}"


@pytest.mark.slow
def test_swin_b_stage_shapes_and_param_count():
    cfg = SwinConfig.swin_b()
    # one abstract trace gives both the param shapes and the stage output shapes
    outs, shapes = jax.eval_shape(lambda: Swin(cfg).init_with_output(jax.random.key(0), jnp.zeros((2, 224, 224, 3))))
    n = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(shapes))
    # torchvision swin_b 87,768,224 - head 1,025,000 - final norm 2,048 (unused by the reference, not built).
    assert n == 86_743_224 - 2_048
    assert [o.shape for o in outs] == [(2, 56, 56, 128), (2, 28, 28, 256), (2, 14, 14, 512), (2, 7, 7, 1024)]
    # stage 3's 18 blocks are 9 scanned (unshifted, shifted) pairs with a leading 'layers' axis
    assert shapes["params"]["stage2"]["even"]["qkv"]["kernel"].value.shape == (9, 512, 3, 16, 32)
    assert shapes["params"]["stage2"]["odd"]["qkv"]["kernel"].names == ("layers", "embed", None, "heads", "head_dim")


@pytest.mark.slow
def test_reference_drop_path_switch():
    r = tiny_face_run()  # its config has drop_path_rate=0.5 and matched eval-mode torch: deterministic by default
    params, x = {"params": r["params"]["swin"]}, jnp.asarray(r["pixels"])
    det = r["maps"][-1]
    ref = Swin(dataclasses.replace(r["cfg"].swin, reference_drop_path=True))
    with pytest.raises(Exception, match="dropout"):
        jax.eval_shape(ref.apply, params, x)  # the reference behaviour needs a 'dropout' rng
    run = quick_jit(lambda p, x, k: ref.apply(p, x, rngs={"dropout": k})[-1])
    a, b = run(params, x, jax.random.key(1)), run(params, x, jax.random.key(2))
    assert not np.allclose(a, det) and not np.allclose(a, b)


def test_window_helpers_match_torchvision_construction():
    idx = relative_position_index(7)
    assert idx.shape == (49, 49) and idx.min() == 0 and idx.max() == 168 and idx[0, 0] == 84
    m = shifted_window_mask(14, 7, 3)
    assert m.shape == (4, 49, 49) and set(np.unique(m)) == {0.0, -100.0}
    assert (m[0] == 0).all()  # the top-left window holds one region only


@pytest.mark.parametrize("shape", [(1, 16, 16, 1), (1, 12, 12, 3), (16, 16, 3)])
def test_bad_pixels_name_the_expected_shape(shape):
    cfg = SwinConfig.tiny()
    with pytest.raises(ValueError, match=r"expected pixels \[N, 16, 16, 3\]"):
        Swin(cfg).init(jax.random.key(0), jnp.zeros(shape))


def test_config_rejects_odd_depth_and_bad_window():
    with pytest.raises(ValueError, match="even"):
        SwinConfig.tiny(depths=(2, 1)).validate()
    with pytest.raises(ValueError, match="window_size"):
        SwinConfig.tiny(window_size=3).validate()
