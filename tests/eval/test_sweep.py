"""Evaluation sweeps: resumable (an interrupted sweep finishes only the missing cells, same table), and the
same numbers on 8 fake devices as on 1 (tiny decoder-only checkpoints, EmoSynth in text mode, few samples)."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from configs import eval as eval_config
from configs.nano_emox import tiny
from emox_jax.config_utils import ConfigError, to_dict
from emox_jax.eval import sweep
from emox_jax.models.qwen2 import Qwen2ForCausalLM
from emox_jax.sharding import make_mesh
from emox_jax.train.checkpoint import Checkpointer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ckpt_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep_ckpts")
    cfg = tiny()
    init = jax.jit(lambda r: nn.unbox(Qwen2ForCausalLM(cfg.llm).init(r, jnp.zeros((1, 8), jnp.int32))["params"]))
    with Checkpointer(root / "phase3" / "checkpoints", async_save=False, max_to_keep=5) as ck:
        for step, seed in ((10, 0), (20, 1)):
            ck.save(step, {"params": {"decoder": init(jax.random.key(seed))}},
                    metadata={"model": to_dict(cfg), "tokenizer": "tiny", "phase": "phase3"})
    return root


def sweep_cfg(ckpt_root, workdir, **over):
    cfg = eval_config.get_config("sweep,tiny")
    cfg.checkpoints = str(ckpt_root)
    cfg.datasets = "emosynth:mer"
    cfg.workdir = str(workdir)
    cfg.eval.mode = "text"
    cfg.eval.max_new_tokens = 8
    cfg.eval.max_samples = 6
    cfg.eval.report_best_on_test = True
    for k, v in over.items():
        setattr(cfg.eval, k, v)
    flat, _ = eval_config.build(cfg, num_devices=8)
    return flat


def _table(summary):
    return [{k: v for k, v in r.items()} for r in summary["rows"]]


def test_sweep_resumes_only_missing_cells_and_matches_8_devices(ckpt_root, tmp_path, monkeypatch):
    full = sweep.run_sweep(sweep_cfg(ckpt_root, tmp_path / "full"), log=lambda s: None)
    assert len(full["computed"]) == 4 and not full["skipped"]  # 2 steps x 1 dataset x 2 splits
    rows = _table(full)
    assert [(r["step"], r["split"]) for r in rows] == [(10, "test"), (20, "test"), (10, "validation"),
                                                       (20, "validation")]
    assert all(r["n_scored"] == 6 and 0.0 <= r["hit_rate"] <= 100.0 for r in rows)
    out = tmp_path / "full"
    assert (out / "results.csv").read_text().splitlines()[0].startswith("checkpoint,")
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(rows))
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert "emosynth_mer__hit_rate.png" in pngs
    sel = json.loads((out / "selection.json").read_text())["emosynth:mer"]
    val = {r["step"]: r["hit_rate"] for r in rows if r["split"] == "validation"}
    assert sel["metric"] == "hit_rate" and sel["best_on_validation"]["validation"] == max(val.values())
    assert "best_on_test_REFERENCE_DEFECT" in sel

    # Interrupted after two cells, then rerun: only the two missing cells are computed; same table.
    real = sweep.generate_cell
    calls = []

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated preemption")
        return real(*a, **k)

    monkeypatch.setattr(sweep, "generate_cell", flaky)
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(sweep_cfg(ckpt_root, tmp_path / "resumed"), log=lambda s: None)
    monkeypatch.setattr(sweep, "generate_cell", real)
    assert len(list((tmp_path / "resumed" / "cells").glob("*.predictions.jsonl"))) == 2
    again = sweep.run_sweep(sweep_cfg(ckpt_root, tmp_path / "resumed"), log=lambda s: None)
    assert len(again["computed"]) == 2 and len(again["skipped"]) == 2
    assert _table(again) == rows

    # The same sweep with the batch sharded over 8 devices gives the same numbers and answers.
    mesh = make_mesh((1, -1, 1), jax.devices()[:8])
    sharded = sweep.run_sweep(sweep_cfg(ckpt_root, tmp_path / "dev8"), mesh=mesh, log=lambda s: None)
    assert _table(sharded) == rows
    for f in (tmp_path / "full" / "cells").glob("*.predictions.jsonl"):
        assert (tmp_path / "dev8" / "cells" / f.name).read_text() == f.read_text()


def test_selection_never_uses_test():
    rows = [dict(checkpoint="c", run="r", step=s, dataset="d:mer", split=sp, primary_metric="hit_rate", hit_rate=v)
            for s, sp, v in ((1, "validation", 50.0), (2, "validation", 40.0), (1, "test", 10.0), (2, "test", 90.0))]
    sel = sweep.select_best(rows, report_best_on_test=True)["d:mer"]
    assert sel["best_on_validation"] == {"checkpoint": "c", "step": 1, "validation": 50.0, "test": 10.0}
    assert sel["best_on_test_REFERENCE_DEFECT"]["step"] == 2
    assert "best_on_test_REFERENCE_DEFECT" not in sweep.select_best(rows)["d:mer"]


def test_config_errors_name_the_key(tmp_path):
    cfg = eval_config.get_config("sweep,tiny")
    with pytest.raises(ConfigError, match="checkpoints is empty"):
        eval_config.build(cfg)
    cfg.checkpoints = "x"
    cfg.eval.batch_size = 3
    with pytest.raises(ConfigError, match="eval.batch_size=3"):
        eval_config.build(cfg, num_devices=8)
    with pytest.raises(sweep.SweepError, match="unknown source 'nosuch'"):
        sweep.parse_datasets("nosuch:mer")
    with pytest.raises(sweep.SweepError, match="task 'emotion'"):
        sweep.parse_datasets("emosynth:emotion")
    assert [d.name for d in sweep.parse_datasets("emosynth")][:2] == ["emosynth:mer", "emosynth:msa"]
    with pytest.raises(sweep.SweepError, match="no Orbax checkpoint"):
        sweep.list_checkpoints(str(tmp_path))


def test_two_process_sweep_gives_the_one_process_table(ckpt_root, tmp_path):
    """Two ``jax.distributed`` processes on localhost (4 CPU devices each) split the records, generate on the
    8-device mesh, gather the answers; process 0 writes the same table and answers as a 1-process sweep."""
    import os
    import pathlib
    import socket
    import subprocess
    import sys

    repo = pathlib.Path(__file__).resolve().parents[2]
    one = sweep.run_sweep(sweep_cfg(ckpt_root, tmp_path / "one"), log=lambda s: None)
    cfg = sweep_cfg(ckpt_root, tmp_path / "two")   # 8 rows per process (the 8-device mesh needs a multiple of 8)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for pid in range(2):
        env = {k: v for k, v in os.environ.items() if not k.startswith("EMOX_")}
        env.update(XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu",
                   PYTHONPATH=str(repo) + os.pathsep + env.get("PYTHONPATH", ""),
                   EMOX_COORDINATOR=f"127.0.0.1:{port}", EMOX_NUM_PROCESSES="2", EMOX_PROCESS_ID=str(pid))
        procs.append(subprocess.Popen([sys.executable, "-m", "tests.eval.sweep_worker", str(tmp_path / "cfg.json")],
                                      cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate(timeout=900)[0] for p in procs]
    for i, o in enumerate(outs):
        (tmp_path / f"worker{i}.log").write_text(o)
    # The Python traceback, not the coordination service's C++ stack dump that follows it.
    tb = ["".join(line for line in o.splitlines(True) if not line.lstrip().startswith(("@", "E1", "F1", "[type")))
          for o in outs]
    assert all(p.returncode == 0 for p in procs), tb[0][-4000:] + tb[1][-4000:]
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    drop = ("checkpoint",)   # absolute paths are the same; keep the comparison about numbers
    assert [{k: v for k, v in r.items() if k not in drop} for r in two] == \
        [{k: v for k, v in r.items() if k not in drop} for r in _table(one)]
    for f in (tmp_path / "one" / "cells").glob("*.predictions.jsonl"):
        assert (tmp_path / "two" / "cells" / f.name).read_text() == f.read_text()
