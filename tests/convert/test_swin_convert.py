"""Swin / FaceXFormer weight import.

The torchvision key mapping is checked without torchvision (not installed beside torch 2.13.0; 0.28.0 would
match): the weights of a real transformers ``SwinModel`` are re-expressed under torchvision's names and
shapes (``features.{2i+1}.{j}.attn.qkv`` = concat(q,k,v), ``mlp.0``/``mlp.3``, ``features.{2i+2}`` merging,
``features.0.0`` conv + ``features.0.2`` LN) and under FaceXFormer's (``backbone.0.`` + head + decoder keys);
both must give the same params as the transformers import, whose forward is checked against torch in
``tests/models/test_swin.py``. So a wrong torchvision name or transpose fails here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emox_jax.convert.io import CheckpointFormatError, TensorMismatchError
from emox_jax.convert.swin import face_encoder_params_from_file, face_encoder_params_from_state_dict
from emox_jax.models.face_encoder import FaceEncoderConfig
from emox_jax.models.swin import relative_position_index
from tests.models.test_qformer import quick_compiles
from tests.models.test_swin import hf_tiny_swin


def hf_to_torchvision(sd: dict, depths) -> dict:
    out = {"features.0.0.weight": sd["embeddings.patch_embeddings.projection.weight"],
           "features.0.0.bias": sd["embeddings.patch_embeddings.projection.bias"],
           "features.0.2.weight": sd["embeddings.norm.weight"], "features.0.2.bias": sd["embeddings.norm.bias"],
           "norm.weight": np.ones(8), "norm.bias": np.zeros(8), "head.weight": np.zeros((3, 8)), "head.bias": np.zeros(3)}
    for s, d in enumerate(depths):
        for j in range(d):
            h, t = f"encoder.layers.{s}.blocks.{j}.", f"features.{2 * s + 1}.{j}."
            out[t + "norm1.weight"], out[t + "norm1.bias"] = sd[h + "layernorm_before.weight"], sd[h + "layernorm_before.bias"]
            out[t + "norm2.weight"], out[t + "norm2.bias"] = sd[h + "layernorm_after.weight"], sd[h + "layernorm_after.bias"]
            out[t + "attn.qkv.weight"] = np.concatenate([sd[h + f"attention.{x}_proj.weight"] for x in "qkv"])
            out[t + "attn.qkv.bias"] = np.concatenate([sd[h + f"attention.{x}_proj.bias"] for x in "qkv"])
            out[t + "attn.proj.weight"], out[t + "attn.proj.bias"] = sd[h + "attention.o_proj.weight"], sd[h + "attention.o_proj.bias"]
            out[t + "attn.relative_position_bias_table"] = sd[h + "attention.relative_position_bias.relative_position_bias_table"]
            out[t + "attn.relative_position_index"] = relative_position_index(4).reshape(-1)
            for a, b in (("mlp.0", "mlp.fc1"), ("mlp.3", "mlp.fc2")):
                out[t + a + ".weight"], out[t + a + ".bias"] = sd[h + b + ".weight"], sd[h + b + ".bias"]
        if s < len(depths) - 1:
            m = f"encoder.layers.{s}.downsample."
            out[f"features.{2 * s + 2}.norm.weight"] = sd[m + "norm.weight"]
            out[f"features.{2 * s + 2}.norm.bias"] = sd[m + "norm.bias"]
            out[f"features.{2 * s + 2}.reduction.weight"] = sd[m + "reduction.weight"]
    return out


@pytest.fixture(scope="module")
def setup():
    cfg = FaceEncoderConfig.tiny()
    hf = hf_tiny_swin(cfg.swin)
    sd = {k: v.detach().numpy() for k, v in hf.state_dict().items()}
    ref = face_encoder_params_from_state_dict(sd, cfg, require_head=False)["swin"]
    return cfg, sd, ref


def assert_same_tree(a, b):
    if isinstance(a, dict):
        assert set(a) == set(b)
        for k in a:
            assert_same_tree(a[k], b[k])
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_torchvision_names_give_the_same_params(setup):
    cfg, sd, ref = setup
    tv = hf_to_torchvision(sd, cfg.swin.depths)
    assert_same_tree(face_encoder_params_from_state_dict(tv, cfg, require_head=False)["swin"], ref)


def test_facexformer_file_with_head_and_decoder(setup, tmp_path):
    cfg, sd, ref = setup
    fx = {"backbone.0." + k[len("features."):] if k.startswith("features.") else k: v
          for k, v in hf_to_torchvision(sd, cfg.swin.depths).items() if not k.startswith(("norm.", "head."))}
    fx.update({"backbone.1.weight": np.ones(8), "backbone.1.bias": np.zeros(8),
               "face_decoder.landmarks_token.weight": np.zeros((1, 16)), "pe_layer.positional_encoding_gaussian_matrix": np.zeros((2, 8))})
    for i in range(cfg.swin.num_stages):
        fx[f"linear_c.{i}.proj.weight"] = np.full((cfg.head_dim, cfg.swin.stage_dim(i)), i, np.float32)
        fx[f"linear_c.{i}.proj.bias"] = np.zeros(cfg.head_dim, np.float32)
    fx["linear_fuse.weight"] = np.arange(cfg.head_dim * cfg.head_dim * 2, dtype=np.float32).reshape(cfg.head_dim, -1, 1, 1)
    path = tmp_path / "model.pt"
    torch.save({"state_dict_backbone": {k: torch.from_numpy(np.asarray(v)) for k, v in fx.items()}}, path)
    params = face_encoder_params_from_file(str(path), cfg)
    assert_same_tree(params["swin"], ref)
    np.testing.assert_array_equal(params["head"]["linear_fuse"]["kernel"], fx["linear_fuse.weight"][:, :, 0, 0].T)
    assert params["head"]["linear_c1"]["kernel"].shape == (cfg.swin.stage_dim(1), cfg.head_dim)


def test_other_architectures_are_named(setup):
    cfg, sd, _ = setup
    tv = hf_to_torchvision(sd, cfg.swin.depths)
    with pytest.raises(CheckpointFormatError, match="Swin v2"):
        face_encoder_params_from_state_dict({**tv, "features.1.0.attn.logit_scale": np.zeros(2)}, cfg, require_head=False)
    with pytest.raises(CheckpointFormatError, match=r"not a Swin checkpoint.*features\.0\.0\.weight"):
        face_encoder_params_from_state_dict({"vision_model.embeddings.patch_embedding.weight": np.zeros(3)}, cfg)
    deeper = {**tv, **{k.replace("features.3.1.", "features.3.2."): v for k, v in tv.items() if k.startswith("features.3.1.")}}
    with pytest.raises(CheckpointFormatError, match=r"depths \(2, 3\) but the model expects \(2, 2\)"):
        face_encoder_params_from_state_dict(deeper, cfg, require_head=False)
    wide = dict(tv, **{"features.0.0.weight": np.zeros((32, 3, 2, 2), np.float32)})
    with pytest.raises(TensorMismatchError, match=r"features\.0\.0\.weight.*\(32, 3, 2, 2\).*\(16, 3, 2, 2\)"):
        face_encoder_params_from_state_dict(wide, cfg, require_head=False)
    with pytest.raises(TensorMismatchError, match="unexpected tensor"):
        face_encoder_params_from_state_dict({**tv, "features.9.extra": np.zeros(1)}, cfg, require_head=False)
    with pytest.raises(CheckpointFormatError, match="no FaceXFormer head"):
        face_encoder_params_from_state_dict(tv, cfg)


@pytest.mark.slow
def test_check_parity_kind_swin(capsys):
    from launch.check_parity import main

    with quick_compiles():
        assert main(["--kind", "swin", "--batch", "1"]) == 0
    assert '"kind": "swin"' in capsys.readouterr().out
