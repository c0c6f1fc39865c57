"""The curriculum report: per-phase task tables (score beside chance) and loss curves (markdown + PNG)."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping, Sequence

TASK_ORDER = ("msa", "mer", "ovmer", "eri", "mir", "erg")


def format_table(phase: str, ev: Mapping[str, Mapping], mode: str = "") -> str:
    """A console/markdown table of one phase's task scores (``mode``: the prompts' modality mode)."""
    lines = [f"\n### {phase}: held-out EmoSynth, greedy generation" + (f" ({mode})" if mode else ""), "",
             "| task | metric | score | chance | n |", "|---|---|---:|---:|---:|"]
    for t in TASK_ORDER:
        if t in ev:
            e = ev[t]
            lines.append(f"| {t} | {e['metric']} | {e['score']:.1f} | {e['chance']:.1f} | {e['n']} |")
    return "\n".join(lines)


def _train_curves(root: pathlib.Path) -> dict[str, tuple[list[int], list[float]]]:
    out = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and (p / "metrics.jsonl").exists()):
        steps, losses = [], []
        for line in (d / "metrics.jsonl").read_text().splitlines():
            m = json.loads(line)
            if m.get("split") == "train" and "loss" in m:
                steps.append(int(m["step"]))
                losses.append(float(m["loss"]))
        if steps:
            out[d.name] = (steps, losses)
    return out


def write_report(root: str | pathlib.Path, evals: Mapping[str, Mapping], phase0_losses: Sequence[float] = (),
                 modes: Mapping[str, str] | None = None) -> None:
    """``root/report.md`` and ``root/loss_curves.png``."""
    root = pathlib.Path(root)
    curves = _train_curves(root)
    png = root / "loss_curves.png"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        n = len(curves) + (1 if phase0_losses else 0)
        fig, axes = plt.subplots(1, max(n, 1), figsize=(3.2 * max(n, 1), 2.8), squeeze=False)
        i = 0
        if phase0_losses:
            axes[0][0].plot(range(1, len(phase0_losses) + 1), phase0_losses)
            axes[0][0].set_title("phase0 (LM on text)")
            i = 1
        for name, (s, l) in curves.items():
            axes[0][i].plot(s, l)
            axes[0][i].set_title(name)
            axes[0][i].set_xlabel("step")
            i += 1
        axes[0][0].set_ylabel("train loss")
        fig.tight_layout()
        fig.savefig(png, dpi=90)
        plt.close(fig)
    except ImportError:
        png = None
    md = ["# Nano-EmoX P2E run report", ""]
    if png is not None:
        md += [f"![loss curves]({png.name})", ""]
    for name, (s, l) in curves.items():
        md.append(f"- {name}: {len(s)} logged points, loss {l[0]:.3f} -> {l[-1]:.3f} (steps {s[0]}..{s[-1]})")
    for phase, ev in evals.items():
        md.append(format_table(phase, ev, (modes or {}).get(phase, "")))
        md.append("")
        for t in TASK_ORDER:
            if t in ev and ev[t].get("examples"):
                k, pred, gt = ev[t]["examples"][0]
                md.append(f"- {t} `{k}`: predicted: {pred[:160]!r} / target: {gt[:160]!r}")
    (root / "report.md").write_text("\n".join(md) + "\n")
