"""Build the tiny preset's shipped phase-0 base (``emox_jax/assets/tiny_base/``; see ``emox_jax/train/tiny_base.py``).

    python -m launch.build_tiny_base [--out emox_jax/assets/tiny_base]

Runs phase 0 of ``configs/p2e.py:all,tiny`` exactly as the main job would (the tiny LM on EmoSynth text, the tiny
CLIP / face encoder on drawn faces; ~6.5 minutes on 2 CPU cores) and writes its result with the fingerprint of
what it was trained on. Rebuild it whenever ``tests/train/test_tiny_base.py`` says the shipped base is stale
(a phase-0 setting, the EmoSynth text, the tokenizer corpus, a tiny model config or the face painter changed).
"""

from __future__ import annotations

import argparse
import datetime
import os
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m launch.build_tiny_base", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=None, help="output dir (default: the package's emox_jax/assets/tiny_base)")
    args = ap.parse_args(argv)
    if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=1").strip()
    import jax

    from configs.p2e import PHASES, get_config
    from emox_jax.train import tiny_base
    from emox_jax.train.curriculum import phase0_text, pretrain_base
    from emox_jax.train.p2e_job import build_job
    from launch.train import phase_inputs

    config = get_config("all,tiny")
    job = build_job(config.phases[PHASES[0]])
    tok, _ = phase_inputs(job)
    t0 = time.perf_counter()
    lines = phase0_text(config, job, tok)
    parts = tiny_base.fingerprint_parts(config, job, lines)
    dec, vision, losses, acc = pretrain_base(config, job, tok, lines, print)
    out = args.out or tiny_base.ASSET_DIR
    tiny_base.save(out, dec, vision, parts, {
        "lm_losses": [round(float(x), 5) for x in losses], "expression_accuracy": acc,
        "built": {"command": "python -m launch.build_tiny_base", "date": datetime.date.today().isoformat(),
                  "jax": jax.__version__, "seconds": round(time.perf_counter() - t0)}})
    print(f"[build_tiny_base] wrote {out} in {time.perf_counter() - t0:.0f} s "
          f"(fingerprint {tiny_base.fingerprint(parts)[:12]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
