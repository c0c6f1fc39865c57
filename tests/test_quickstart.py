"""End-to-end: the main job at reduced size (``python -m launch.quickstart --fast``): phase 0, all four P2E
phases a few steps each, generation-based evaluation of the six tasks after every phase, and the report."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.heavy
def test_quickstart_fast_runs_every_phase(tmp_path):
    env = dict(os.environ)
    # One CPU device as on a user's machine; fewer XLA optimisations (compilation dominates a few-step run).
    env["XLA_FLAGS"] = "--xla_backend_optimization_level=0"
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    wd = tmp_path / "qs"
    out = subprocess.run([sys.executable, "-m", "launch.quickstart", "--fast", "--workdir", str(wd)], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=1500)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    for phase in ("phase1a", "phase1b", "phase2", "phase3"):
        assert (wd / phase / "checkpoints").is_dir(), phase
        ev = json.loads((wd / "eval" / f"{phase}.json").read_text())
        assert set(ev) == {"msa", "mer", "ovmer", "eri", "mir", "erg"}
        for task, e in ev.items():
            assert 0.0 <= e["score"] <= 100.0 and 0.0 <= e["chance"] <= 100.0, (phase, task, e)
        assert f"### {phase}: held-out EmoSynth" in log
    report = (wd / "report.md").read_text()
    assert "loss_curves.png" in report and (wd / "loss_curves.png").stat().st_size > 1000
    assert "| mer | hit_rate |" in report
