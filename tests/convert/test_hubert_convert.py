"""HuBERT import: parity with transformers HubertModel, weight-norm namings, bad checkpoints, CLIs."""

import argparse
import json

import jax
import numpy as np
import pytest

from emox_jax.convert.hubert import (config_from_hf, convert_cli, convert_state_dict, fold_weight_norm, load_hubert,
                                     load_jax)
from emox_jax.convert.io import CheckpointFormatError, TensorMismatchError, load_state_dict
from emox_jax.models.hubert import Hubert, main_feature

TINY = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128,
            conv_dim=(32, 32, 32), conv_stride=(5, 2, 2), conv_kernel=(10, 3, 3), num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=4, do_stable_layer_norm=True, feat_extract_norm="layer", conv_bias=False)
POS = "encoder.pos_conv_embed.conv."


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel, HubertConfig, HubertModel

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("hubert")
    model = HubertModel(HubertConfig(**TINY)).eval()
    model.save_pretrained(root / "hubert")
    CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                     num_attention_heads=2, image_size=16, patch_size=8)).save_pretrained(root / "clip")
    return {"root": root, "model": model}


def _waves(b=2, n=1600, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((b, n)) * rng.uniform(0.2, 2.0, (b, 1))).astype(np.float32)


@pytest.mark.slow
def test_parity_with_hubert_model_for_requested_layers(hf):
    import torch

    cfg, params = load_hubert(hf["root"] / "hubert", min_samples=1600)
    assert (cfg.num_layers, cfg.pos_conv_kernel, cfg.main_layers) == (4, 16, (1, 2, 3, 4))
    x = _waves()
    model = Hubert(cfg)
    with jax.default_matmul_precision("highest"):
        out = jax.jit(lambda p, x: model.apply({"params": p}, x, layers=(0, 1, 2, 3, 4), return_sequences=True,
                                               normalize="none"))(params, x)
        part = jax.jit(lambda p, x: model.apply({"params": p}, x, layers=(2,), normalize="none"))(params, x)
    with torch.no_grad():
        ref = hf["model"](torch.from_numpy(x), output_hidden_states=True)
    # reference indexing: the last state carries the final LayerNorm (= HF 5.x last_hidden_state)
    refs = [ref.hidden_states[i].numpy() for i in range(4)] + [ref.last_hidden_state.numpy()]
    for i in range(5):
        np.testing.assert_allclose(out["sequence"][i], refs[i], atol=1e-4, rtol=0)
        np.testing.assert_allclose(out["time_mean"][i], refs[i].mean(axis=1), atol=1e-4, rtol=0)
    np.testing.assert_allclose(part["time_mean"][2], refs[2].mean(axis=1), atol=1e-4, rtol=0)
    # audio-branch feature = mean of the last four states, time-averaged (reference order of operations)
    np.testing.assert_allclose(main_feature(out, (1, 2, 3, 4)), np.mean(refs[1:], axis=0).mean(axis=1),
                               atol=1e-4, rtol=0)


def test_weight_norm_namings_and_prefix_give_same_params(hf):
    cfg, params = load_hubert(hf["root"] / "hubert", min_samples=1600)
    sd = load_state_dict(hf["root"] / "hubert")
    g, v = sd[POS + "parametrizations.weight.original0"], sd[POS + "parametrizations.weight.original1"]
    assert g.shape == (1, 1, 16) and v.shape == (64, 16, 16)
    # torch's own weight-norm fold agrees with ours
    import torch

    folded = torch._weight_norm(torch.from_numpy(v), torch.from_numpy(g), 2).numpy()
    np.testing.assert_allclose(fold_weight_norm(g, v), folded, atol=1e-6)
    base = {k: a for k, a in sd.items() if "parametrizations" not in k}
    for variant in ({POS + "weight_g": g, POS + "weight_v": v}, {POS + "weight": folded}):
        other = convert_state_dict({**base, **variant}, cfg)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), other, params)
    prefixed = convert_state_dict({"hubert." + k: a for k, a in sd.items()}, cfg)
    jax.tree.map(np.testing.assert_array_equal, prefixed, params)


def test_other_architecture_and_bad_tensors_are_named(hf):
    with pytest.raises(CheckpointFormatError, match=r"expected a HuBERT checkpoint.*'clip_vision_model'"):
        load_hubert(hf["root"] / "clip")
    with pytest.raises(CheckpointFormatError, match="feat_extract_norm='layer'"):
        config_from_hf({"model_type": "hubert", "feat_extract_norm": "group"})  # HuBERT-base layout
    cfg, _ = load_hubert(hf["root"] / "hubert")
    sd = load_state_dict(hf["root"] / "hubert")
    with pytest.raises(CheckpointFormatError, match="feature_extractor.conv_layers.0.conv.weight"):
        convert_state_dict(load_state_dict(hf["root"] / "clip"), cfg)
    bad = dict(sd, **{"encoder.layers.1.attention.q_proj.weight": np.zeros((64, 32), np.float32)})
    with pytest.raises(TensorMismatchError, match=r"layers\.1\.attention\.q_proj\.weight.*\(64, 32\).*\(64, 64\)"):
        convert_state_dict(bad, cfg)
    no_pos = {k: a for k, a in sd.items() if "pos_conv_embed.conv.param" not in k}
    with pytest.raises(TensorMismatchError, match="weight_g/weight_v"):
        convert_state_dict(no_pos, cfg)


@pytest.mark.slow
def test_check_parity_cli_and_convert_cli(hf, tmp_path, capsys):
    from launch.check_parity import main

    assert main(["--kind", "hubert", "--hf-dir", str(hf["root"] / "hubert"), "--seq-len", "1200"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["kind"] == "hubert" and result["ok"] and result["max_abs_diff"] <= 1e-4
    assert result["frames"] == 59 and len(result["per_output"]) == 5
    # an impossible tolerance makes the CLI fail (exit 1) — the check is not vacuous
    assert main(["--kind", "hubert", "--hf-dir", str(hf["root"] / "hubert"), "--seq-len", "1200",
                 "--tol", "0"]) == 1
    capsys.readouterr()
    summary = convert_cli(argparse.Namespace(kind="hubert", direction="to-jax", src=str(hf["root"] / "hubert"),
                                             dst=str(tmp_path / "o"), dtype=None))
    cfg, restored = load_jax(tmp_path / "o")
    ref_cfg, params = load_hubert(hf["root"] / "hubert")
    assert cfg == ref_cfg
    jax.tree.map(np.testing.assert_array_equal, restored, params)
    assert summary["num_params"] == sum(a.size for a in jax.tree.leaves(params))
