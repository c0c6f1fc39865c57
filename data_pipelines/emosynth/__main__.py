"""CLI: python -m data_pipelines.emosynth --out DIR --clips N --seed S --layout LAYOUT[,LAYOUT...]|all

Prints one JSON line: clips, seconds, clips/s, and the files written per layout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from data_pipelines.emosynth.clips import SynthConfig
from data_pipelines.emosynth.generator import generate
from data_pipelines.emosynth.layouts import LAYOUTS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_pipelines.emosynth", description=__doc__)
    p.add_argument("--out", required=True, help="output directory (layout roots are created inside)")
    p.add_argument("--clips", type=int, default=240, help="number of clips (train + held-out test)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layout", default="all", help=f"comma-separated subset of {', '.join(LAYOUTS)}, or 'all'")
    p.add_argument("--size", type=int, default=SynthConfig.size, help="frame height/width in pixels")
    p.add_argument("--frames", type=int, default=SynthConfig.num_frames, help="frames per clip")
    p.add_argument("--fps", type=int, default=SynthConfig.fps)
    p.add_argument("--test-fraction", type=float, default=SynthConfig.test_fraction)
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="processes encoding media (output bytes do not depend on it)")
    a = p.parse_args(argv)
    cfg = SynthConfig(size=a.size, num_frames=a.frames, fps=a.fps, test_fraction=a.test_fraction)
    try:
        m = generate(a.out, a.clips, a.seed, a.layout, cfg=cfg, workers=a.workers)
    except ValueError as e:
        print(f"emosynth: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({
        "out": str(a.out), "clips": m["clips"], "splits": m["splits"], "seconds": round(m["seconds"], 3),
        "clips_per_second": round(m["clips_per_second"], 1), "workers": a.workers,
        "layouts": {n: {"root": l["root"], "label_files": sorted(l["label_files"]), "media": l["num_videos"]}
                    for n, l in m["layouts"].items()},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
