"""Host-side metric logging: average device scalars over a logging window, write JSON lines, format a postfix.

Device metrics (dicts of replicated scalars from the train step) are kept on device until a window is
flushed, so logging does not force a host sync every step.
"""

from __future__ import annotations

import json
import pathlib
import time
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np


class MetricsWindow:
    """Collect per-step metric dicts; ``flush(step)`` returns their means and appends them to ``path`` (JSONL)."""

    def __init__(self, path: str | pathlib.Path | None = None):
        self.path = pathlib.Path(path) if path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._buf: list[Mapping[str, Any]] = []
        self._t0 = time.perf_counter()
        self.history: list[dict[str, float]] = []

    def add(self, metrics: Mapping[str, Any]) -> None:
        self._buf.append(metrics)

    def flush(self, step: int) -> dict[str, float]:
        """Means over the window (plus ``step`` and ``steps_per_s``); empty dict when nothing was added."""
        if not self._buf:
            return {}
        host = jax.device_get(self._buf)
        keys = host[0].keys()
        out = {k: float(np.mean([float(m[k]) for m in host])) for k in keys}
        dt = time.perf_counter() - self._t0
        out["steps_per_s"] = len(host) / dt if dt > 0 else float("nan")
        out["step"] = int(step)
        self._buf.clear()
        self._t0 = time.perf_counter()
        self.history.append(out)
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(json.dumps(out) + "\n")
        return out


def postfix(metrics: Mapping[str, float]) -> str:
    """A short ``loss=… lr=… gnorm=…`` string for a progress bar."""
    parts = []
    for key, short, fmt in (("loss", "loss", ".4f"), ("lr", "lr", ".2e"), ("grad_norm", "gnorm", ".3f")):
        if key in metrics:
            parts.append(f"{short}={metrics[key]:{fmt}}")
    return " ".join(parts)
