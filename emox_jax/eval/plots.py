"""PNG plots of sweep results: each metric against training step, one figure per (dataset, metric).

One line per (run, split): ``run`` is the checkpoint folder's parent (a P2E phase), ``split`` validation
(solid) or test (dashed). Uses matplotlib's non-interactive Agg backend (no display needed).
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

SKIP = {"step"}
COUNT_PREFIX = "n_"


def metric_names(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Numeric columns worth plotting (counts ``n_*`` and the step itself excluded)."""
    names = []
    for r in rows:
        for k, v in r.items():
            if (isinstance(v, (int, float)) and not isinstance(v, bool) and k not in SKIP
                    and not k.startswith(COUNT_PREFIX) and k not in names):
                names.append(k)
    return names


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def plot_metrics(rows: Sequence[Mapping[str, Any]], out_dir: str | pathlib.Path) -> list[pathlib.Path]:
    """Write ``<out_dir>/<dataset>__<metric>.png`` for every dataset and metric; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in sorted({r["dataset"] for r in rows}):
        ds_rows = [r for r in rows if r["dataset"] == ds]
        for metric in metric_names(ds_rows):
            fig, ax = plt.subplots(figsize=(5, 3.2))
            for run in sorted({r["run"] for r in ds_rows}):
                for split, style in (("validation", "-o"), ("test", "--s")):
                    pts = sorted((r["step"], r[metric]) for r in ds_rows
                                 if r["run"] == run and r["split"] == split and metric in r)
                    if pts:
                        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=f"{run} {split}")
            ax.set_xlabel("training step")
            ax.set_ylabel(metric)
            ax.set_title(f"{ds}: {metric}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
            fig.tight_layout()
            path = out_dir / f"{_safe(ds)}__{_safe(metric)}.png"
            fig.savefig(path, dpi=80)
            plt.close(fig)
            paths.append(path)
    return paths
