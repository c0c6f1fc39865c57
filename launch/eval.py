"""Evaluation sweep: checkpoints x datasets, data-parallel generation over all devices and hosts, resumable.

    python -m launch.eval --config=configs/eval.py:sweep --config.checkpoints=runs/quickstart \\
        --config.datasets=emosynth:mer,emosynth:msa [--config.workdir=runs/eval_sweep] [--config.steps=...]

Multi-host: run the same command on every host (``jax.distributed`` is initialised from the environment by
``emox_jax.train.distributed.initialize``). Finished cells are written as they finish and skipped
on a rerun. Outputs under the work dir: ``cells/`` (one JSON + predictions per cell), ``results.csv``,
``results.json``, ``selection.json`` (best checkpoint per dataset, chosen on validation), ``plots/*.png``.
See ``emox_jax/eval/sweep.py``.
"""

from __future__ import annotations

import json
import sys

from absl import app
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", "configs/eval.py:sweep", "sweep config (configs/eval.py)",
                                          lock_config=True)


def main(argv) -> None:
    del argv
    import jax

    from configs import eval as eval_config
    from emox_jax import sharding as shd
    from emox_jax.eval.sweep import run_sweep
    from emox_jax.train import distributed

    distributed.initialize()   # no-op for one process; before any device query
    flat, mesh_cfg = eval_config.build(_CONFIG.value, num_devices=jax.device_count())
    mesh = shd.make_mesh(mesh_cfg.shape)
    summary = run_sweep(flat, mesh=mesh)
    if jax.process_index() == 0:
        print(json.dumps({"computed": len(summary["computed"]), "skipped": len(summary["skipped"]),
                          "errors": summary["errors"], "selection": summary.get("selection"),
                          "workdir": flat["workdir"]}, default=str))


if __name__ == "__main__":
    app.run(main)
    sys.exit(0)
