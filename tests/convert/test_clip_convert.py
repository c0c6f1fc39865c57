"""CLIP import: parity with transformers (CLIPVisionModel and CLIPModel dirs), bad checkpoints, CLIs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from emox_jax.convert.clip import convert_state_dict, load_clip_vision, load_jax
from emox_jax.convert.io import CheckpointFormatError, TensorMismatchError, load_state_dict
from emox_jax.models.clip_vit import ClipVision

REPO = Path(__file__).resolve().parents[2]
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4, image_size=32,
            patch_size=8)


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory):
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModel, HubertConfig, HubertModel

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("clip")
    vision = CLIPVisionModel(CLIPVisionConfig(**TINY)).eval()
    vision.save_pretrained(root / "vision")
    full = CLIPModel(CLIPConfig(vision_config=TINY, text_config=dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, vocab_size=100,
        bos_token_id=0, eos_token_id=1, pad_token_id=1))).eval()
    full.save_pretrained(root / "full")
    HubertModel(HubertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                             conv_dim=(16,), conv_stride=(5,), conv_kernel=(10,), num_conv_pos_embeddings=8,
                             num_conv_pos_embedding_groups=2, do_stable_layer_norm=True,
                             feat_extract_norm="layer")).save_pretrained(root / "hubert")
    return {"root": root, "vision": vision, "full": full}


def _pixels(b=2, seed=0):
    return np.random.default_rng(seed).standard_normal((b, 32, 32, 3)).astype(np.float32)


def _run_ours(cfg, params, x, **kw):
    model = ClipVision(cfg)
    with jax.default_matmul_precision("highest"):
        return jax.jit(lambda p, x: model.apply({"params": p}, x, **kw))(params, x)


@pytest.mark.slow
def test_parity_with_clip_vision_model_for_requested_layers(hf_dirs):
    import torch

    cfg, params = load_clip_vision(hf_dirs["root"] / "vision")
    assert (cfg.num_layers, cfg.hidden_size, cfg.activation, cfg.frame_layer) == (4, 64, "quick_gelu", 3)
    x = _pixels()
    with torch.no_grad():
        ref = hf_dirs["vision"](torch.from_numpy(x.transpose(0, 3, 1, 2)), output_hidden_states=True)
    # frame-branch style (CLS only, deepest 3 < L) and fusion style (several), plus tokens and pooled output
    for layers in ((3,), (1, 2, 3)):
        out = _run_ours(cfg, params, x, layers=layers)
        for i in layers:
            np.testing.assert_allclose(out["cls"][i], ref.hidden_states[i][:, 0].numpy(), atol=1e-4, rtol=0)
    out = _run_ours(cfg, params, x, layers=(0, 2, 4), return_tokens=True, pooled=True)
    for i in (0, 2, 4):
        np.testing.assert_allclose(out["tokens"][i], ref.hidden_states[i].numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(out["pooled"], ref.pooler_output.numpy(), atol=1e-4, rtol=0)


def test_clip_model_dir_uses_vision_tower_and_ignores_text(hf_dirs):
    import torch

    cfg, params = load_clip_vision(hf_dirs["root"] / "full")
    sd = load_state_dict(hf_dirs["root"] / "full")
    assert any(k.startswith("text_model.") for k in sd) and any(k.startswith("vision_model.") for k in sd)
    x = _pixels(seed=1)
    with torch.no_grad():
        ref = hf_dirs["full"].vision_model(torch.from_numpy(x.transpose(0, 3, 1, 2)), output_hidden_states=True)
    out = _run_ours(cfg, params, x, layers=(3,))
    np.testing.assert_allclose(out["cls"][3], ref.hidden_states[3][:, 0].numpy(), atol=1e-4, rtol=0)


def test_other_architecture_and_bad_tensors_are_named(hf_dirs):
    with pytest.raises(CheckpointFormatError, match=r"expected a CLIP checkpoint.*model_type='hubert'"):
        load_clip_vision(hf_dirs["root"] / "hubert")
    cfg, _ = load_clip_vision(hf_dirs["root"] / "vision")
    sd = load_state_dict(hf_dirs["root"] / "vision")
    # HuBERT tensors under a CLIP config: named as not a CLIP vision checkpoint
    with pytest.raises(CheckpointFormatError, match="patch_embedding"):
        convert_state_dict(load_state_dict(hf_dirs["root"] / "hubert"), cfg)
    bad = dict(sd)
    bad["encoder.layers.2.mlp.fc1.weight"] = np.zeros((128, 32), np.float32)
    with pytest.raises(TensorMismatchError, match=r"encoder\.layers\.2\.mlp\.fc1\.weight.*\(128, 32\).*\(128, 64\)"):
        convert_state_dict(bad, cfg)
    missing = {k: v for k, v in sd.items() if k != "post_layernorm.bias"}
    with pytest.raises(TensorMismatchError, match="missing tensor 'post_layernorm.bias'"):
        convert_state_dict(missing, cfg)
    extra = dict(sd, **{"encoder.layers.9.mlp.fc1.weight": np.zeros((2,), np.float32)})
    with pytest.raises(TensorMismatchError, match=r"unexpected.*encoder\.layers\.9"):
        convert_state_dict(extra, cfg)


@pytest.mark.slow
def test_check_parity_cli_subprocess(hf_dirs):
    env = dict(os.environ, JAX_PLATFORMS="cpu", HF_HUB_OFFLINE="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env["XLA_FLAGS"] = ""  # one device is enough for the CLI
    res = subprocess.run([sys.executable, "-m", "launch.check_parity", "--kind", "clip", "--hf-dir",
                          str(hf_dirs["root"] / "full"), "--batch", "2"], capture_output=True, text=True,
                         cwd=REPO, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    result = json.loads(res.stdout.strip().splitlines()[-1])
    assert result["kind"] == "clip" and result["ok"] and result["max_abs_diff"] <= 1e-4
    assert set(result["per_output"]) == {f"hidden_{i}" for i in range(5)} | {"pooled"}


def test_launch_convert_writes_restorable_bf16_params(hf_dirs, tmp_path, capsys):
    import ml_dtypes

    from launch.convert import main

    assert main(["--kind", "clip", "--direction", "to-jax", "--src", str(hf_dirs["root"] / "full"),
                 "--dst", str(tmp_path / "o"), "--dtype", "bfloat16"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    cfg, restored = load_jax(tmp_path / "o")
    ref_cfg, params = load_clip_vision(hf_dirs["root"] / "full")
    assert summary["num_params"] == sum(a.size for a in jax.tree.leaves(params))
    assert cfg.param_dtype == "bfloat16" and cfg.num_layers == ref_cfg.num_layers == 4
    jax.tree.map(lambda r, p: np.testing.assert_array_equal(r, p.astype(ml_dtypes.bfloat16)), restored, params)
    with pytest.raises(SystemExit, match="only --direction to-jax"):
        main(["--kind", "clip", "--direction", "to-hf", "--src", str(tmp_path / "o"), "--dst", str(tmp_path / "x")])
