"""Facial branch: FaceXFormer head + Swin vs torch (transformers Swin + the head written in torch per spec §2.6),
bilinear resize vs ``F.interpolate``, FacePooling vs ``nn.MultiheadAttention`` + MLP, sharding, bad input."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from flax import linen as nn

from emox_jax.convert.reference_ckpt import face_pooling_params
from emox_jax.models.face_encoder import (FaceEncoder, FaceEncoderConfig, FacePooling, FacePoolingConfig,
                                          preprocess_pixels, resize_bilinear)
from emox_jax.sharding import LOGICAL_AXIS_RULES, logical_to_shardings, make_mesh
from tests.models.test_swin import quick_jit, tiny_face_run


@pytest.mark.parametrize("src,dst", [((7, 7), (56, 56)), ((3, 5), (8, 8)), ((4, 4), (4, 4))])
def test_resize_matches_torch_bilinear_align_corners_false(src, dst):
    x = np.random.default_rng(0).normal(size=(2, *src, 3)).astype(np.float32)
    want = F.interpolate(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), size=dst, mode="bilinear",
                         align_corners=False).numpy().transpose(0, 2, 3, 1)
    got = np.asarray(resize_bilinear(jnp.asarray(x), dst))
    assert float(np.max(np.abs(got - want))) <= 1e-5


@pytest.mark.slow
def test_face_encoder_matches_torch_swin_plus_head():
    # frames 0..255 -> ImageNet normalisation -> transformers Swin -> the head written in torch (tiny_face_run)
    r = tiny_face_run()
    assert r["feats"].shape == (8, 2, r["cfg"].head_dim)
    assert float(np.max(np.abs(r["feats"] - r["want_feats"]))) <= 1e-4


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


@functools.cache
def tiny_pooling_run() -> dict:
    """Tiny ``FacePooling`` converted from torch ``nn.MultiheadAttention`` + MLP; one jitted apply, run on
    ``feats [3, 5, 16]`` and on the same frames in reverse order (same shapes: one compile)."""
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
    apply = quick_jit(FacePooling(cfg).apply)
    x = jnp.asarray(feats.numpy())
    with jax.default_matmul_precision("highest"):
        got, rev = apply({"params": params}, x), apply({"params": params}, x[:, ::-1])
    return dict(cfg=cfg, want=want, got=np.asarray(got), reversed=np.asarray(rev))


def test_face_pooling_matches_torch_mha_and_mlp():
    r = tiny_pooling_run()
    cfg = r["cfg"]
    assert r["got"].shape == (3, cfg.num_queries, cfg.proj.out_dim)
    assert float(np.max(np.abs(r["got"] - r["want"]))) <= 1e-4


def test_face_pooling_real_preset_count_and_permutation_invariance():
    shapes = jax.eval_shape(FacePooling(FacePoolingConfig()).init, jax.random.key(0), jnp.zeros((1, 8, 256)))
    assert sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(shapes)) == 264_192 + 1_378_560  # spec §6
    r = tiny_pooling_run()
    np.testing.assert_allclose(r["got"], r["reversed"], atol=1e-5)  # no temporal encoding (spec)


@pytest.mark.slow
def test_face_encoder_eight_devices_match_one():
    r = tiny_face_run()  # single-device run of the same jitted function (and its torch reference)
    cfg, frames = r["cfg"], jnp.asarray(r["frames"])
    mesh = make_mesh((1, 8, 1))
    with jax.set_mesh(mesh), nn.logical_axis_rules(LOGICAL_AXIS_RULES):
        # logical axis names come from an abstract init (no compile); the values are the converted params
        boxed = jax.eval_shape(FaceEncoder(cfg).init, jax.random.key(0), frames)
        sharded = jax.device_put({"params": r["params"]}, logical_to_shardings(boxed, mesh))
        x = jax.device_put(frames, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(("data", "fsdp"))))
        with jax.default_matmul_precision("highest"):
            multi, maps = r["apply"](sharded, x)
    assert any(len(leaf.sharding.device_set) == 8 and not leaf.sharding.is_fully_replicated
               for leaf in jax.tree_util.tree_leaves(sharded))  # params really are split over the mesh
    assert len(multi.sharding.device_set) == 8
    np.testing.assert_allclose(np.asarray(multi), r["feats"], atol=1e-4)
    for got, single in zip(maps, r["maps"]):
        np.testing.assert_allclose(np.asarray(got), single, atol=1e-4)
    assert float(np.max(np.abs(np.asarray(multi) - r["want_feats"]))) <= 1e-4
