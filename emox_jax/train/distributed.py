"""Multi-host start-up through JAX's own runtime (no home-made cluster code).

`initialize()` is called first thing by every entry point. It is a no-op for a single process, and otherwise
calls `jax.distributed.initialize`, which finds the coordinator by itself on TPU VMs (metadata server) and under
SLURM (`SLURM_*` variables), or from the generic environment variables below (any other launcher, and the
2-process localhost test):

    EMOX_COORDINATOR=host:port  EMOX_NUM_PROCESSES=N  EMOX_PROCESS_ID=i  [EMOX_LOCAL_DEVICE_IDS=0,1,...]
"""

from __future__ import annotations

import logging
import os

import jax

log = logging.getLogger(__name__)
_initialized = False


def _env_int(name: str) -> int | None:
    v = os.environ.get(name)
    return int(v) if v not in (None, "") else None


def initialize(force: bool = False) -> None:
    """Initialise the distributed runtime when this process is one of several; idempotent."""
    global _initialized
    if _initialized:
        return
    coord = os.environ.get("EMOX_COORDINATOR")
    nproc = _env_int("EMOX_NUM_PROCESSES")
    pid = _env_int("EMOX_PROCESS_ID")
    if coord or nproc:
        if not (coord and nproc is not None and pid is not None):
            raise RuntimeError("multi-process run: EMOX_COORDINATOR, EMOX_NUM_PROCESSES and EMOX_PROCESS_ID must "
                               f"all be set (got {coord!r}, {nproc!r}, {pid!r})")
        local = os.environ.get("EMOX_LOCAL_DEVICE_IDS")
        jax.distributed.initialize(coordinator_address=coord, num_processes=nproc, process_id=pid,
                                   local_device_ids=[int(x) for x in local.split(",")] if local else None)
    elif force or "SLURM_NTASKS" in os.environ and int(os.environ["SLURM_NTASKS"]) > 1 \
            or os.environ.get("TPU_WORKER_HOSTNAMES", "").count(",") > 0:
        jax.distributed.initialize()  # auto-detects SLURM / TPU pod
    _initialized = True
    if jax.process_count() > 1:
        # One collective over every device while all processes are here together: on CPU, Gloo builds a
        # communicator at a program's first collective and waits only 30 s for the peers, and the start-up
        # programs (parameter init, placement) run before any barrier of ours. Each freshly compiled train step
        # gets `barrier()` before its first run (loop.py). On GPU/TPU this is a cheap barrier.
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("emox_jax.distributed.initialize")
        log.info("process %d of %d, %d local / %d global devices", jax.process_index(), jax.process_count(),
                 jax.local_device_count(), jax.device_count())


_barriers = 0


def barrier(name: str, timeout_s: int = 3600) -> None:
    """Wait until every process has reached this point; a no-op for one process.

    Uses the coordination service's barrier, not a device collective: on CPU every new program's first
    collective builds a Gloo communicator whose peers must all arrive within 30 s, and two processes that
    compile a train step at different speeds on a loaded host arrive further apart than that ("Gloo context
    initialization failed: GetKeyValue() timed out", seen in the 2-process test). Call it right before the
    first run of a freshly compiled program. Barrier ids are made unique per call (a count), since every
    process makes the same calls in the same order.
    """
    global _barriers
    if jax.process_count() == 1:
        return
    from jax._src import distributed as jax_distributed   # the client Orbax's own barriers use

    _barriers += 1
    client = jax_distributed.global_state.client
    if client is None:   # initialised by other means than jax.distributed: a device barrier
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(f"emox_jax:{name}:{_barriers}")
        return
    client.wait_at_barrier(f"emox_jax:{name}:{_barriers}", timeout_in_ms=timeout_s * 1000)


def is_main_process() -> bool:
    return jax.process_index() == 0
