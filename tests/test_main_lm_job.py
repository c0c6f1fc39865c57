"""End-to-end: the LM main job at reduced size trains, checkpoints and prints a sample."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
# A 1-layer, 64-wide decoder for a few steps: the whole pipeline, not the quality, is under test here.
SMALL = ["--config=configs/lm.py:tiny", "--config.model.num_layers=1", "--config.model.hidden_size=64",
         "--config.model.intermediate_size=128", "--config.model.num_heads=2", "--config.model.head_dim=32",
         "--config.model.num_kv_heads=1", "--config.loop.log_every=2", "--config.loop.ckpt_every=4",
         "--config.optim.warmup_steps=1", "--config.optim.total_steps=12", "--config.sample.max_new_tokens=6"]


def _run(workdir, steps):
    # --config must come before its overrides.
    cmd = [sys.executable, "-m", "launch.train_lm", *SMALL, f"--config.loop.steps={steps}", f"--workdir={workdir}"]
    # 2 fake CPU devices: the default mesh becomes (1, 2, 1), so the job runs sharded, while compiling much
    # faster than over 8 devices (test_sharding covers the 8-device meshes).
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_main_lm_job(tmp_path):
    out = _run(tmp_path, 8)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 8 and summary["mesh"] == {"data": 1, "fsdp": 2, "tensor": 1}
    assert summary["final_loss"] < summary["first_loss"]  # it learns
    assert "final loss" in out and "sample:" in out
    assert isinstance(summary["sample"], str)
    ckpts = tmp_path / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir() if p.name.isdigit()) == ["4", "8"]
    assert (ckpts / "8" / "commit_success.txt").exists() or (ckpts / "8" / "_CHECKPOINT_METADATA").exists()
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [2, 4, 6, 8]
