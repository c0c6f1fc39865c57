"""The main job: train the tiny Nano-EmoX through all of P2E on EmoSynth, on CPU, and report what it learned.

    python -m launch.quickstart [--workdir runs/quickstart] [--fast] [--pretrain]

1. generates a small EmoSynth corpus in memory (``data_pipelines.emosynth``; train + held-out test clips);
2. phase 0: the tiny LM pretrained on text and the tiny CLIP / face encoder on drawn faces' expressions (no
   pretrained weights exist offline): taken from the base shipped in ``emox_jax/assets/tiny_base`` when it was
   built for exactly this configuration and text (``emox_jax/train/tiny_base.py``), else (or with ``--pretrain``)
   trained here, ~6.5 more minutes;
3. trains phases 1a, 1b, 2, 3 (``configs/p2e.py:all,tiny``), each from the previous phase's checkpoint;
4. after each phase, answers held-out clips for all six tasks by greedy generation, scores them with
   ``emox_jax.eval.scoring`` and prints the score beside the task's chance level;
5. writes ``report.md`` and ``loss_curves.png`` in the work dir.

About 10 minutes on 2 CPU cores (measured: 556 and 617 s in two runs, phase 3 ~245 s of it; with ``--pretrain``
934 s). Each part's time is printed as it ends.
``--fast`` (the CI end-to-end test) runs every phase for a few steps on a smaller corpus (< ~2 minutes after
compilation). Rerunning resumes where it stopped; compiled programs are cached in ``WORKDIR/.jax_cache``
(unless ``JAX_COMPILATION_CACHE_DIR`` points elsewhere). Only what ``launch/setup.sh`` installed is needed (the
tiny tokenizer is trained there).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time


def fast_overrides(config) -> None:
    """Every phase a few steps, a small corpus, short generations (the CI end-to-end test)."""
    config.pretrain_lm.steps = 4
    config.pretrain_lm.batch_size = 4
    config.pretrain_lm.seq_len = 384
    config.pretrain_lm.corpus_lines = 50
    config.pretrain_vision.steps = 2
    config.pretrain_vision.batch_size = 4
    config.pretrain_vision.faces = 8
    config.pretrain_vision.held_out_faces = 8
    config.eval_generate.max_new_tokens = 8
    config.eval_generate.per_task = 4
    for name in config.phases:
        p = config.phases[name]
        p.loop.steps = 2
        p.loop.log_every = 1
        p.loop.eval_every = 1   # exercises the periodic held-out eval (step 1) besides the final one (step 2)
        p.loop.eval_batches = 2
        p.loop.ckpt_every = 0
        p.loop.batch_size = 4
        p.loop.progress = False
        p.optim.warmup_steps = 1
        p.optim.total_steps = 2
        p.emosynth.clips = 40
        p.data.batch_size = 4


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m launch.quickstart", description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default="runs/quickstart", help="output dir (checkpoints, report)")
    ap.add_argument("--fast", action="store_true", help="a few steps per phase (CI smoke run)")
    ap.add_argument("--pretrain", action="store_true",
                    help="train phase 0 here (~6.5 more minutes) instead of using the shipped phase-0 base")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
        # Compiling is a large part of a CPU run (each phase's train and eval steps, per length bucket). A
        # few-step run (--fast) skips the expensive LLVM optimisations (level 0); the full run uses level 1:
        # measured on the phase-3 step (2 CPU cores, benchmarks/p2e_step.py --cached-features): compile 34 ->
        # 24 s, step time unchanged (level 0 doubles it).
        level = 0 if args.fast else 1
        flags = os.environ.get("XLA_FLAGS", "") + f" --xla_backend_optimization_level={level}"
        os.environ["XLA_FLAGS"] = flags.strip()
    import jax

    if not jax.config.jax_compilation_cache_dir:
        # Compiling dominates a CPU run of the tiny model; a rerun (resume after an interruption, or the same
        # job again) reuses the programs compiled before from the work dir's cache.
        jax.config.update("jax_compilation_cache_dir", str(pathlib.Path(args.workdir).absolute() / ".jax_cache"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    from configs.p2e import get_config
    from emox_jax.train import distributed
    from emox_jax.train.curriculum import run_all

    distributed.initialize()
    config = get_config("all,tiny")
    if args.fast:
        fast_overrides(config)
    if args.pretrain:
        config.shipped_base = False
    t0 = time.perf_counter()
    results = run_all(config, args.workdir)
    stopped = any(r.stopped for r in results)
    print(f"\nquickstart {'stopped (rerun to resume)' if stopped else 'done'} in "
          f"{time.perf_counter() - t0:.0f} s; report: {pathlib.Path(args.workdir) / 'report.md'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
