"""The main job end to end at reduced size, in two forms a user runs it:

* ``python -m launch.quickstart --fast``: phase 0, all four P2E phases a few steps each, generation-based
  evaluation of the six tasks after every phase, and the report;
* ``launch/colab_quickstart.ipynb`` executed with nbclient (``EMOX_NB_FAST=1``): the install cell is skipped
  (the package is importable from the checkout), the tiny P2E runs a couple of steps per phase, and the
  predict cell shows a clip's frames and answers all six tasks from the trained checkpoint.

Both run in one CPU device with the same XLA flags, in this one file (one xdist worker, in order), so the
notebook's kernel finds the programs the quickstart compiled in the test session's compilation cache
(``tests/conftest.py``): on 2 cores compiling is most of what these runs cost.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "launch" / "colab_quickstart.ipynb"
# One CPU device as on a user's machine; fewer XLA optimisations (compilation dominates a few-step run).
XLA_FLAGS = "--xla_backend_optimization_level=0"
pytestmark = pytest.mark.slow


def test_quickstart_fast_runs_every_phase(tmp_path):
    env = dict(os.environ, XLA_FLAGS=XLA_FLAGS, JAX_PLATFORMS="cpu")
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
            assert e["n"] == 4, (phase, task, e)   # --fast: 4 held-out clips per task
        assert f"### {phase}: held-out EmoSynth" in log
    report = (wd / "report.md").read_text()
    assert "loss_curves.png" in report and (wd / "loss_curves.png").stat().st_size > 1000
    assert "| mer | hit_rate |" in report and "chance" in report
    # Rerunning finds every phase finished and does not train again.
    again = subprocess.run([sys.executable, "-m", "launch.quickstart", "--fast", "--workdir", str(wd)], cwd=REPO,
                           env=env, capture_output=True, text=True, timeout=1500)
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    for phase in ("phase1a", "phase1b", "phase2", "phase3"):
        assert f"[{phase}] already finished" in again.stdout


def test_colab_notebook_executes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)
    # The kernel inherits the environment: reduced size, a temporary work dir, the checkout importable.
    monkeypatch.setenv("EMOX_NB_FAST", "1")
    monkeypatch.setenv("EMOX_NB_WORKDIR", str(tmp_path / "work"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("XLA_FLAGS", XLA_FLAGS)
    client = nbclient.NotebookClient(nb, timeout=1800, kernel_name="python3",
                                     resources={"metadata": {"path": str(REPO)}})
    client.execute()
    outputs = {i: "".join(o.get("text", "") for o in c.get("outputs", []) if o.get("output_type") == "stream")
               for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    text = "\n".join(outputs.values())
    assert "emox_jax ready" in text
    assert "trained in" in text and "phase3 step 2" in text
    for task in ("mer", "msa", "ovmer", "eri", "mir", "erg"):
        assert f"{task:>5}: " in text
    # The predict cell drew the frames (a matplotlib figure output).
    last = nb.cells[-1]
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {}) for o in last.outputs)
    assert (tmp_path / "work" / "phase3" / "checkpoints").is_dir()
