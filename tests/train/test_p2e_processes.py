"""P2E trainer across processes: a 2-process ``jax.distributed`` run on localhost gives the 1-process losses,
and SIGTERM mid-phase leaves a valid latest checkpoint from which the rerun continues.

Subprocesses run with fewer XLA optimisations (``--xla_backend_optimization_level=0``): compiling dominates
these short runs on CPU, and the numbers compared are produced by the same flags on both sides where needed.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from emox_jax import sharding as shd
from emox_jax.train import loop
from emox_jax.train.checkpoint import Checkpointer
from tests.train.p2e_testlib import synthetic_batch, tiny_job

pytestmark = pytest.mark.slow
REPO = pathlib.Path(__file__).resolve().parents[2]
RTOL = 5e-5  # different device counts and XLA flags: codegen-level fp32 differences (test_p2e_step)


def _env(devices: int, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMOX_")}
    # A loaded CI host can make the two processes reach a collective far apart (each compiles on its own).
    env["XLA_FLAGS"] = (f"--xla_force_host_platform_device_count={devices} --xla_backend_optimization_level=0 "
                        "--xla_cpu_collective_timeout_seconds=600")
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one(tmp_path):
    job = tiny_job("phase1a", steps=3)
    ref = loop.train_phase(job, tmp_path / "one", batch_source=lambda s: synthetic_batch(job, s),
                           mesh=shd.make_mesh((1, 8, 1)), log_fn=lambda s: None).losses
    port = _free_port()
    procs = []
    for pid in range(2):
        env = _env(4, EMOX_COORDINATOR=f"127.0.0.1:{port}", EMOX_NUM_PROCESSES="2", EMOX_PROCESS_ID=str(pid))
        procs.append(subprocess.Popen([sys.executable, "-m", "tests.train.p2e_worker", str(tmp_path / "two"),
                                       str(tmp_path / "two.json")], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate(timeout=900)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs[0][-3000:] + outs[1][-3000:]
    got = json.loads((tmp_path / "two.json").read_text())
    assert got["processes"] == 2 and got["devices"] == 8
    np.testing.assert_allclose(got["losses"], ref, rtol=RTOL)


def test_sigterm_saves_and_resume_continues(tmp_path):
    wd = tmp_path / "run"
    cmd = [sys.executable, "-m", "launch.train", "--config=configs/p2e.py:phase1a,tiny", f"--workdir={wd}",
           "--config.loop.steps=400", "--config.loop.log_every=1", "--config.loop.ckpt_every=0",
           "--config.loop.batch_size=4", "--config.data.batch_size=4", "--config.loop.progress=False",
           "--config.emosynth.clips=30", "--config.optim.total_steps=400"]
    p = subprocess.Popen(cmd, cwd=REPO, env=_env(1), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = wd / "metrics.jsonl"
    t0 = time.time()
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 2):
        assert p.poll() is None, p.stdout.read()[-3000:]
        assert time.time() - t0 < 900, "the run never logged a step"
        time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    out = p.communicate(timeout=300)[0]
    assert p.returncode == 0, out[-3000:]
    assert "stop requested (SIGTERM)" in out
    with Checkpointer(wd / "checkpoints", async_save=False) as ck:
        step = ck.latest_step()
        assert step is not None and 2 <= step < 400
        assert ck.metadata(step)["phase"] == "phase1a"
    # The rerun resumes from that checkpoint (data iterator included) and finishes the phase.
    cmd2 = [c for c in cmd if not c.startswith(("--config.loop.steps", "--config.optim.total_steps"))]
    cmd2 += [f"--config.loop.steps={step + 2}", "--config.optim.total_steps=400"]
    out2 = subprocess.run(cmd2, cwd=REPO, env=_env(1), capture_output=True, text=True, timeout=900)
    assert out2.returncode == 0, out2.stdout[-3000:] + out2.stderr[-3000:]
    assert f"resumed from {wd / 'checkpoints' / str(step)}" in out2.stdout + out2.stderr
    with Checkpointer(wd / "checkpoints", async_save=False) as ck:
        assert ck.latest_step() == step + 2
