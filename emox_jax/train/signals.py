"""Preemption handling: SIGTERM (TPU maintenance, SLURM ``--signal=TERM@300``) asks the loop to save and exit.

The handler only sets a flag; the loop checks it between steps, writes a checkpoint, waits for Orbax to
finalise it and returns. On several processes every host must stop at the same step (the checkpoint is a
collective), so ``should_stop`` agrees across processes (any host signalled -> all stop).
"""

from __future__ import annotations

import signal
import threading

import jax
import numpy as np


class StopRequest:
    """Install with ``with StopRequest() as stop:``; ``stop.requested`` / ``stop.should_stop()``."""

    def __init__(self, signals=(signal.SIGTERM,)):
        self.signals = tuple(signals)
        self._flag = threading.Event()
        self._old = {}
        self.signal_name = ""

    def _handler(self, signum, frame):  # noqa: ARG002 - signal API
        self.signal_name = signal.Signals(signum).name
        self._flag.set()

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():  # handlers can only be set from the main thread
            for s in self.signals:
                self._old[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old.clear()

    @property
    def requested(self) -> bool:
        return self._flag.is_set()

    def request(self) -> None:
        """Ask for a stop programmatically (tests, max-steps-per-session)."""
        self._flag.set()

    def should_stop(self) -> bool:
        """This process's flag, OR-ed over all processes when there are several."""
        local = self._flag.is_set()
        if jax.process_count() == 1:
            return local
        from jax.experimental import multihost_utils

        flags = multihost_utils.process_allgather(np.asarray([local], np.int32))
        return bool(np.asarray(flags).any())
