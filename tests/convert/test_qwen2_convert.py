"""Qwen2 HF import/export: checkpoint formats, export -> transformers load -> same logits, clear errors, CLIs."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from safetensors.numpy import load_file, save_file  # noqa: E402

from emox_jax.convert.io import TensorMismatchError  # noqa: E402
from emox_jax.convert.qwen2 import load_hf, load_jax, save_hf  # noqa: E402
from emox_jax.models.qwen2 import Qwen2Config, Qwen2ForCausalLM  # noqa: E402
from launch import convert as convert_cli  # noqa: E402
from tests.models.test_qwen2 import random_params  # noqa: E402
from tests.models.test_qwen2_parity import make_hf_qwen2  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("hf_tied")
    make_hf_qwen2(path, tied=True, theta=10_000.0, layers=2)
    return path


def _same_tree(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)


def test_sharded_safetensors_torch_bin_and_lm_head_only_give_the_same_params(hf_dir, tmp_path):
    _, ref = load_hf(hf_dir)
    hf = transformers.Qwen2ForCausalLM.from_pretrained(hf_dir)
    sharded = tmp_path / "sharded"
    hf.save_pretrained(sharded, max_shard_size="60KB")
    assert (sharded / "model.safetensors.index.json").exists()
    _same_tree(load_hf(sharded)[1], ref)

    binary = tmp_path / "bin"
    binary.mkdir()
    shutil.copy(hf_dir / "config.json", binary / "config.json")
    torch.save(hf.state_dict(), binary / "pytorch_model.bin")  # tied: holds both embed_tokens and lm_head
    _same_tree(load_hf(binary)[1], ref)

    head_only = tmp_path / "head_only"  # what safetensors' save_model keeps for tied weights
    head_only.mkdir()
    shutil.copy(hf_dir / "config.json", head_only / "config.json")
    sd = load_file(hf_dir / "model.safetensors")
    sd["lm_head.weight"] = sd.pop("model.embed_tokens.weight")
    save_file(sd, head_only / "model.safetensors")
    _same_tree(load_hf(head_only)[1], ref)

    unscanned = load_hf(hf_dir, scan_layers=False)[1]
    assert "layers_1" in unscanned and unscanned["layers_1"]["self_attn"]["q_proj"]["kernel"].shape == (64, 4, 16)


def test_missing_or_mismatched_tensor_names_it_and_both_shapes(hf_dir, tmp_path):
    sd = load_file(hf_dir / "model.safetensors")
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(hf_dir / "config.json", bad / "config.json")
    name = "model.layers.1.mlp.up_proj.weight"
    save_file({k: v for k, v in sd.items() if k != name}, bad / "model.safetensors")
    with pytest.raises(TensorMismatchError, match=r"missing tensor 'model\.layers\.1\.mlp\.up_proj\.weight'"):
        load_hf(bad)
    save_file({**sd, name: np.zeros((100, 64), np.float32)}, bad / "model.safetensors")
    with pytest.raises(TensorMismatchError, match=r"up_proj\.weight'.*\(100, 64\).*\(128, 64\)"):
        load_hf(bad)
    save_file({**sd, "model.extra.weight": np.zeros(3, np.float32)}, bad / "model.safetensors")
    with pytest.raises(TensorMismatchError, match="model.extra.weight"):
        load_hf(bad)


@pytest.mark.slow
@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_export_with_lora_merged_loads_in_transformers_with_the_same_logits(tmp_path, tied):
    cfg = Qwen2Config.tiny(vocab_size=80, hidden_size=48, num_layers=2, num_heads=6, num_kv_heads=2, head_dim=8,
                           intermediate_size=96, rope_theta=1e6, tie_word_embeddings=tied, lora_rank=4,
                           lora_alpha=8.0)
    params = random_params(cfg, seed=5, std=0.1)
    params = jax.tree_util.tree_map_with_path(  # a trained-looking adapter (B != 0)
        lambda p, x: np.random.default_rng(6).normal(0, 0.1, x.shape).astype(np.float32)
        if p[-1].key == "lora_b" else x, params)
    ids = np.random.default_rng(7).integers(0, cfg.vocab_size, (2, 40))
    ours = np.asarray(jax.jit(lambda p: Qwen2ForCausalLM(cfg).apply({"params": p}, jnp.asarray(ids)))(params))
    save_hf(params, cfg, tmp_path)
    hf = transformers.Qwen2ForCausalLM.from_pretrained(tmp_path, attn_implementation="eager").eval()
    assert hf.config.tie_word_embeddings == tied
    with torch.no_grad():
        ref = hf(torch.as_tensor(ids)).logits.numpy()
    np.testing.assert_allclose(ref, ours, atol=1e-4, rtol=0)
    back_cfg, back = load_hf(tmp_path)
    assert back_cfg.rope_theta == 1e6 and back_cfg.head_dim == 8 and back_cfg.lora_rank == 0


def test_convert_cli_round_trips_through_our_format(hf_dir, tmp_path, capsys):
    assert convert_cli.main(["--kind", "qwen2", "--direction", "to-jax", "--src", str(hf_dir),
                             "--dst", str(tmp_path / "jax")]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["kind"] == "qwen2" and info["num_params"] > 0
    cfg, params = load_jax(tmp_path / "jax")
    assert cfg == load_hf(hf_dir)[0]
    _same_tree(params, load_hf(hf_dir)[1])
    assert convert_cli.main(["--kind", "qwen2", "--direction", "to-hf", "--src", str(tmp_path / "jax"),
                             "--dst", str(tmp_path / "hf")]) == 0
    a, b = load_file(hf_dir / "model.safetensors"), load_file(tmp_path / "hf" / "model.safetensors")
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    with pytest.raises(SystemExit, match="unknown --kind"):
        convert_cli.main(["--kind", "nope", "--direction", "to-jax", "--src", "x", "--dst", "y"])


@pytest.mark.slow
def test_check_parity_cli_prints_json_and_exits_zero(hf_dir):
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu", "HF_HUB_OFFLINE": "1"}
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run([sys.executable, "-m", "launch.check_parity", "--kind", "qwen2", "--hf-dir",
                           str(hf_dir), "--seq-len", "300", "--batch", "1"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["kind"] == "qwen2" and result["ok"] and result["seq_len"] == 300
    assert 0 <= result["max_abs_diff"] <= 1e-4 == result["tolerance"]
