"""The main job end to end at reduced size, in two forms a user runs it:

* ``python -m launch.quickstart --fast``: phase 0, all four P2E phases a few steps each, generation-based
  evaluation of the six tasks after every phase, and the report;
* ``launch/colab_quickstart.ipynb`` executed with nbclient (``EMOX_NB_FAST=1``): the install cell is skipped
  (the package is importable from the checkout), the tiny P2E runs a couple of steps per phase, and the
  predict cell shows a clip's frames and answers all six tasks from the trained checkpoint.

Both run on one CPU device with the same XLA flags, on one work dir: the notebook reruns the main job's
training cell on the quickstart's finished work dir (everything is skipped: resume works) and its kernel finds
the programs the quickstart compiled in the test session's compilation cache (``tests/conftest.py``).
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
# The tasks of each tiny phase's datasets (configs/p2e.py:tiny_datasets).
EVAL_TASKS = {"phase1a": {"mer", "msa"}, "phase1b": {"mer"}, "phase2": {"mir", "mer"},
              "phase3": {"msa", "mer", "ovmer", "eri", "mir", "erg"}}


@pytest.fixture(scope="module")
def quickstart_dir(tmp_path_factory):
    """A ``launch.quickstart --fast`` work dir (the run's log is kept beside it)."""
    env = dict(os.environ, XLA_FLAGS=XLA_FLAGS, JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    wd = tmp_path_factory.mktemp("quickstart") / "qs"
    out = subprocess.run([sys.executable, "-m", "launch.quickstart", "--fast", "--workdir", str(wd)], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=1500)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    (wd / "quickstart.log").write_text(log)
    return wd


def test_quickstart_fast_runs_every_phase(quickstart_dir):
    wd = quickstart_dir
    log = (wd / "quickstart.log").read_text()
    for phase in ("phase1a", "phase1b", "phase2", "phase3"):
        assert (wd / phase / "checkpoints").is_dir(), phase
        ev = json.loads((wd / "eval" / f"{phase}.json").read_text())
        assert set(ev) == {"msa", "mer", "ovmer", "eri", "mir", "erg"}
        for task, e in ev.items():
            assert 0.0 <= e["score"] <= 100.0 and 0.0 <= e["chance"] <= 100.0, (phase, task, e)
            assert e["n"] == 4, (phase, task, e)   # --fast: 4 held-out clips per task
        assert f"### {phase}: held-out EmoSynth" in log
        # Held-out loss: periodic (eval_every=1 -> step 1) and final (step 2), once each, with per-task losses.
        evals = [json.loads(x) for x in (wd / phase / "metrics.jsonl").read_text().splitlines()]
        evals = [e for e in evals if e["split"] == "eval"]
        assert [e["step"] for e in evals] == [1, 2], (phase, evals)
        for e in evals:   # every dataset of the phase is evaluated, not just the first one
            tasks = {k[len("loss_"):] for k, v in e.items() if k.startswith("loss_") and 0 < v < 20}
            assert tasks == EVAL_TASKS[phase] and 0 < e["loss"] < 20, (phase, e)
    assert "(audio_text)" in log and "(face_frame_text)" in log   # 1a / 1b evaluated in what they trained
    # --fast changes phase 0's settings, so the shipped base (built for the full run) is not used: phase 0 trains.
    assert "was built for another phase 0 (differs in: " in log and "[phase0] pretraining the tiny LM" in log
    report = (wd / "report.md").read_text()
    assert "loss_curves.png" in report and (wd / "loss_curves.png").stat().st_size > 1000
    assert "| mer | hit_rate |" in report and "chance" in report


def test_colab_notebook_executes(quickstart_dir, monkeypatch):
    """The notebook on the quickstart's work dir (same --fast config): its training cell finds every phase
    finished and resumes nothing (the training itself ran in the fixture, through the same ``run_all``); the
    predict cell loads the phase-3 checkpoint, draws a held-out clip's frames and answers the six tasks."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)
    # The kernel inherits the environment: reduced size, the work dir, the checkout importable.
    monkeypatch.setenv("EMOX_NB_FAST", "1")
    monkeypatch.setenv("EMOX_NB_WORKDIR", str(quickstart_dir))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("XLA_FLAGS", XLA_FLAGS)
    client = nbclient.NotebookClient(nb, timeout=1800, kernel_name="python3",
                                     resources={"metadata": {"path": str(REPO)}})
    client.execute()
    outputs = {i: "".join(o.get("text", "") for o in c.get("outputs", []) if o.get("output_type") == "stream")
               for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    text = "\n".join(outputs.values())
    assert "emox_jax ready" in text and "trained in" in text
    for phase in ("phase1a", "phase1b", "phase2", "phase3"):
        assert f"[{phase}] already finished" in text   # rerunning the main job resumes, trains nothing twice
    for task in ("mer", "msa", "ovmer", "eri", "mir", "erg"):
        assert f"{task:>5}: " in text
    # The predict cell drew the frames (a matplotlib figure output).
    last = nb.cells[-1]
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {}) for o in last.outputs)
