"""Facial branch: FaceXFormer head + Swin vs torch (transformers Swin + the head written in torch per spec §2.6),
bilinear resize vs ``F.interpolate``, FacePooling vs ``nn.MultiheadAttention`` + MLP, sharding, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from flax import linen as nn

from emox_jax.convert.reference_ckpt import face_pooling_params
from emox_jax.convert.swin import face_encoder_params_from_state_dict
from emox_jax.models.face_encoder import (FaceEncoder, FaceEncoderConfig, FacePooling, FacePoolingConfig,
                                          preprocess_pixels, resize_bilinear)
from emox_jax.sharding import LOGICAL_AXIS_RULES, logical_to_shardings, make_mesh
from tests.models.test_swin import hf_stage_outputs, hf_tiny_swin


@pytest.mark.parametrize("src,dst", [((7, 7), (56, 56)), ((3, 5), (8, 8)), ((4, 4), (4, 4))])
def test_resize_matches_torch_bilinear_align_corners_false(src, dst):
    x = np.random.default_rng(0).normal(size=(2, *src, 3)).astype(np.float32)
    want = F.interpolate(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), size=dst, mode="bilinear",
                         align_corners=False).numpy().transpose(0, 2, 3, 1)
    got = np.asarray(resize_bilinear(jnp.asarray(x), dst))
    assert float(np.max(np.abs(got - want))) <= 1e-5


def torch_facexformer_head(stage_maps_nhwc, linears, fuse_w):
    """FaceXFormer's multi-scale fusion written from the spec: Linear->256, upsample, reverse concat, 1x1, GAP."""
    size = stage_maps_nhwc[0].shape[1:3]
    ups = []
    for fmap, (w, b) in zip(stage_maps_nhwc, linears):
        h = torch.from_numpy(fmap) @ w.T + b  # [N, H, W, 256]
        ups.append(F.interpolate(h.permute(0, 3, 1, 2), size=size, mode="bilinear", align_corners=False))
    fused = F.conv2d(torch.cat(ups[::-1], dim=1), fuse_w)
    return fused.mean(dim=(2, 3)).numpy()


@pytest.mark.slow
def test_face_encoder_matches_torch_swin_plus_head():
    cfg = FaceEncoderConfig.tiny(pixel_mode="reference_raw")
    hf = hf_tiny_swin(cfg.swin, seed=3)
    torch.manual_seed(4)
    h = cfg.head_dim
    linears = [(torch.randn(h, cfg.swin.stage_dim(i)) * 0.1, torch.randn(h) * 0.1) for i in range(cfg.swin.num_stages)]
    fuse_w = torch.randn(h, h * cfg.swin.num_stages, 1, 1) * 0.1
    sd = {k: v.detach().numpy() for k, v in hf.state_dict().items()}
    for i, (w, b) in enumerate(linears):
        sd[f"linear_c.{i}.proj.weight"], sd[f"linear_c.{i}.proj.bias"] = w.numpy(), b.numpy()
    sd["linear_fuse.weight"] = fuse_w.numpy()
    params = face_encoder_params_from_state_dict(sd, cfg)
    frames = np.random.default_rng(5).uniform(0, 1, size=(2, 3, 16, 16, 3)).astype(np.float32)
    maps = hf_stage_outputs(hf, torch.from_numpy(frames.reshape(6, 16, 16, 3).transpose(0, 3, 1, 2).copy()))
    want = torch_facexformer_head(maps, linears, fuse_w).reshape(2, 3, h)
    with jax.default_matmul_precision("highest"):
        got = jax.jit(FaceEncoder(cfg).apply)({"params": params}, jnp.asarray(frames))
    assert got.shape == (2, 3, h)
    assert float(np.max(np.abs(np.asarray(got) - want))) <= 1e-4


def test_pixel_modes():
    frames = np.random.default_rng(6).integers(0, 256, size=(2, 16, 16, 3)).astype(np.float32)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(preprocess_pixels(jnp.asarray(frames), "imagenet"), (frames / 255.0 - mean) / std,
                               atol=1e-5)
    np.testing.assert_array_equal(preprocess_pixels(jnp.asarray(frames), "reference_raw"), frames)
    with pytest.raises(ValueError, match="pixel_mode"):
        FaceEncoderConfig.tiny(pixel_mode="raw").validate()


@pytest.mark.parametrize("shape", [(1, 2, 16, 16, 1), (1, 2, 12, 12, 3), (2, 16, 16, 3), (1, 2, 3, 16, 16)])
def test_bad_frames_name_the_expected_layout(shape):
    with pytest.raises(ValueError, match=r"expected frames \[B, T, 16, 16, 3\]"):
        FaceEncoder(FaceEncoderConfig.tiny()).init(jax.random.key(0), jnp.zeros(shape))


def test_face_pooling_matches_torch_mha_and_mlp():
    cfg = FacePoolingConfig.tiny()
    torch.manual_seed(0)
    query = torch.randn(cfg.num_queries, cfg.dim)
    attn = torch.nn.MultiheadAttention(cfg.dim, cfg.num_heads, batch_first=True)
    with torch.no_grad():
        attn.in_proj_bias.normal_()
        attn.out_proj.bias.normal_()
    proj = torch.nn.Sequential(torch.nn.Linear(cfg.dim, cfg.proj.hidden_dim), torch.nn.GELU(), torch.nn.Dropout(0.1),
                               torch.nn.Linear(cfg.proj.hidden_dim, cfg.proj.out_dim)).eval()
    feats = torch.randn(3, 5, cfg.dim)
    with torch.no_grad():
        pooled, _ = attn.eval()(query.unsqueeze(0).repeat(3, 1, 1), feats, feats)
        want = proj(pooled).numpy()
    sd = {"facial_encoder.query": query.numpy()}
    sd.update({f"facial_encoder.attn.{k}": v.numpy() for k, v in attn.state_dict().items()})
    sd.update({f"facial_encoder.face_proj.{k}": v.numpy() for k, v in proj.state_dict().items()})
    params = face_pooling_params(sd, cfg, set(), "test")
    with jax.default_matmul_precision("highest"):
        got = FacePooling(cfg).apply({"params": params}, jnp.asarray(feats.numpy()))
    assert got.shape == (3, cfg.num_queries, cfg.proj.out_dim)
    assert float(np.max(np.abs(np.asarray(got) - want))) <= 1e-4


@pytest.mark.slow
def test_face_pooling_real_preset_count_and_permutation_invariance():
    shapes = jax.eval_shape(FacePooling(FacePoolingConfig()).init, jax.random.key(0), jnp.zeros((1, 8, 256)))
    assert sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(shapes)) == 264_192 + 1_378_560  # spec §6
    cfg = FacePoolingConfig.tiny()
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 6, cfg.dim)), jnp.float32)
    m = FacePooling(cfg)
    p = m.init(jax.random.key(0), x)
    np.testing.assert_allclose(m.apply(p, x), m.apply(p, x[:, ::-1]), atol=1e-5)  # no temporal encoding (spec)


@pytest.mark.slow
def test_face_encoder_eight_devices_match_one():
    cfg = FaceEncoderConfig.tiny()
    m = FaceEncoder(cfg)
    frames = jnp.asarray(np.random.default_rng(7).uniform(0, 255, size=(8, 1, 16, 16, 3)), jnp.float32)
    params = jax.jit(m.init)(jax.random.key(0), frames)
    single = jax.jit(m.apply)(params, frames)
    mesh = make_mesh((1, 8, 1))
    with jax.set_mesh(mesh), nn.logical_axis_rules(LOGICAL_AXIS_RULES):
        sharded = jax.device_put(params, logical_to_shardings(params, mesh))
        x = jax.device_put(frames, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(("data", "fsdp"))))
        multi = jax.jit(m.apply)(sharded, x)
    assert len(multi.sharding.device_set) == 8
    np.testing.assert_allclose(np.asarray(multi), np.asarray(single), atol=1e-4)
