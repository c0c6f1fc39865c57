"""Subprocess body of the multi-host sweep test: one process of a ``jax.distributed`` sweep (EMOX_* env vars).

    python -m tests.eval.sweep_worker CONFIG_JSON
Runs ``emox_jax.eval.sweep.run_sweep`` on the flat sweep config with the batch sharded over every process's
devices; process 0 writes the tables (as ``launch.eval`` does).
"""

import json
import sys

from emox_jax.train import distributed


def main(cfg_path: str) -> None:
    distributed.initialize()
    import jax

    from emox_jax.eval import sweep
    from emox_jax.sharding import make_mesh

    cfg = json.loads(open(cfg_path).read())
    summary = sweep.run_sweep(cfg, mesh=make_mesh((1, -1, 1)), log=lambda s: None)
    assert jax.process_count() == 2 and len(summary["computed"]) == 4, summary


if __name__ == "__main__":
    main(sys.argv[1])
