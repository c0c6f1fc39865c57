"""Swin backbone: architecture parity with transformers' ``SwinModel`` (fp32), drop-path switch, bad input.

Why transformers and not torchvision: torchvision is not installed beside torch 2.13.0 in this venv (the
matching wheel would be torchvision 0.28.0; we do not add it). transformers' ``SwinModel`` implements the
same Swin v1 maths (pre-LN window attention, relative position bias, -100 shifted-window mask, no shift when a
window covers the map, patch merging order x0,x1,x2,x3 + LN + bias-free reduction), so it checks the
architecture; the torchvision *key mapping* is checked in ``tests/convert/test_swin_convert.py`` by re-expressing
this same HF model's weights under torchvision names.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from emox_jax.convert.swin import face_encoder_params_from_state_dict
from emox_jax.models.face_encoder import FaceEncoderConfig
from emox_jax.models.swin import Swin, SwinConfig, relative_position_index, shifted_window_mask


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


@pytest.mark.slow
def test_swin_matches_transformers_swin():
    cfg = SwinConfig.tiny()
    hf = hf_tiny_swin(cfg)
    sd = {k: v.detach().numpy() for k, v in hf.state_dict().items()}
    params = face_encoder_params_from_state_dict(sd, FaceEncoderConfig(swin=cfg), require_head=False)["swin"]
    x = np.random.default_rng(0).normal(size=(2, cfg.image_size, cfg.image_size, 3)).astype(np.float32)
    want = hf_stage_outputs(hf, torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    with jax.default_matmul_precision("highest"):
        got = jax.jit(Swin(cfg).apply)({"params": params}, jnp.asarray(x))
    assert [g.shape for g in got] == [w.shape for w in want] == [(2, 8, 8, 16), (2, 4, 4, 32)]
    for i, (g, w) in enumerate(zip(got, want)):
        diff = float(np.max(np.abs(np.asarray(g) - w)))
        assert diff <= 1e-4, f"stage {i}: max abs diff {diff}"


@pytest.mark.slow
def test_swin_b_stage_shapes_and_param_count():
    cfg = SwinConfig.swin_b()
    shapes = jax.eval_shape(lambda: Swin(cfg).init(jax.random.key(0), jnp.zeros((1, 224, 224, 3))))
    n = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(shapes))
    # torchvision swin_b 87,768,224 - head 1,025,000 - final norm 2,048 (unused by the reference, not built).
    assert n == 86_743_224 - 2_048
    outs = jax.eval_shape(lambda p, x: Swin(cfg).apply(p, x), shapes, jax.ShapeDtypeStruct((2, 224, 224, 3), jnp.float32))
    assert [o.shape for o in outs] == [(2, 56, 56, 128), (2, 28, 28, 256), (2, 14, 14, 512), (2, 7, 7, 1024)]
    # stage 3's 18 blocks are 9 scanned (unshifted, shifted) pairs with a leading 'layers' axis
    assert shapes["params"]["stage2"]["even"]["qkv"]["kernel"].value.shape == (9, 512, 3, 16, 32)
    assert shapes["params"]["stage2"]["odd"]["qkv"]["kernel"].names == ("layers", "embed", None, "heads", "head_dim")


@pytest.mark.slow
def test_reference_drop_path_switch():
    cfg = SwinConfig.tiny(drop_path_rate=0.5)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(4, 16, 16, 3)), jnp.float32)
    params = jax.jit(Swin(cfg).init)(jax.random.key(0), x)
    det = jax.jit(lambda p, x: Swin(cfg).apply(p, x)[-1])(params, x)  # deterministic by default (the fix)
    ref = Swin(SwinConfig.tiny(drop_path_rate=0.5, reference_drop_path=True))
    with pytest.raises(Exception, match="dropout"):
        jax.eval_shape(ref.apply, params, x)  # the reference behaviour needs a 'dropout' rng
    run = jax.jit(lambda p, x, r: ref.apply(p, x, rngs={"dropout": r})[-1])
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
