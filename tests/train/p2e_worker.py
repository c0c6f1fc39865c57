"""Subprocess body of the multi-process test: one process of a ``jax.distributed`` run (EMOX_* env vars).

    python -m tests.train.p2e_worker WORKDIR OUT_JSON
Trains the tiny phase 1a for 3 steps on the shared synthetic global batches (each process feeds its rows).
"""

import json
import sys

from emox_jax.train import distributed


def main(workdir: str, out: str) -> None:
    distributed.initialize()
    import jax

    from emox_jax import sharding as shd
    from emox_jax.train import loop
    from tests.train.p2e_testlib import synthetic_batch, tiny_job

    job = tiny_job("phase1a", steps=3)
    res = loop.train_phase(job, workdir, batch_source=lambda s: synthetic_batch(job, s),
                           mesh=shd.make_mesh((1, -1, 1)), log_fn=lambda s: None)
    if jax.process_index() == 0:
        with open(out, "w") as f:
            json.dump({"losses": res.losses, "devices": jax.device_count(), "processes": jax.process_count()}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
