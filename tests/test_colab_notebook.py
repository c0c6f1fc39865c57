"""Execute launch/colab_quickstart.ipynb with nbclient at reduced size (EMOX_NB_FAST=1): the install cell is
skipped (the package is importable from the checkout), the tiny P2E runs a step per phase, and the predict cell
shows a clip's frames and answers all six tasks from the trained checkpoint."""

import os
import pathlib

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "launch" / "colab_quickstart.ipynb"


@pytest.mark.slow
@pytest.mark.heavy
def test_colab_notebook_executes(tmp_path, monkeypatch):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)
    # The kernel inherits the environment: reduced size, a temporary work dir, the checkout importable, and a
    # single CPU device (the 8 fake devices of conftest are not needed here).
    monkeypatch.setenv("EMOX_NB_FAST", "1")
    monkeypatch.setenv("EMOX_NB_WORKDIR", str(tmp_path / "work"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("XLA_FLAGS", "")
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
