"""Train Nano-EmoX through P2E: one phase, or all of them in order.

    python -m launch.train --config=configs/p2e.py:phase3[,tiny] --workdir=DIR [--config.loop.steps=...]
    python -m launch.train --config=configs/p2e.py:all,tiny --workdir=DIR

Every process of a multi-host run executes the same command (``launch/tpu_pod.sh``, ``launch/slurm_gpu.sbatch``);
``emox_jax.train.distributed.initialize`` joins them first. Rerunning the same command resumes from the
latest finalised checkpoint (after a preemption, SIGTERM saves one). A single phase reads its start point from
``--config.init_from='("DIR_OF_PHASE2",)'`` and ``--config.base=PARAMS_DIR`` (``launch.convert``); ``all``
chains them itself under ``DIR/<phase>/``.

Datasets: real phases read prepared TFDS datasets from ``--config.data.data_dir``; ``,tiny`` phases use an
in-memory EmoSynth corpus generated at start-up (``config.emosynth``).
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys
from collections.abc import Sequence

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "configs/p2e.py:PHASE[,tiny]", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "output directory (checkpoints, TensorBoard, report)")


# ------------------------------------------------------------------------------------------- EmoSynth data
_CACHE: dict = {}


def emosynth_records(clips: int, seed: int, split: str) -> list[dict]:
    """EmoSynth schema records of one split, in memory (media encoded as mp4/wav bytes); cached per process."""
    from data_pipelines.emosynth import SynthConfig, iter_examples

    key = (clips, seed)
    if key not in _CACHE:
        recs = list(iter_examples(clips, seed, SynthConfig(size=64)))
        _CACHE[key] = recs
    return [r for r in _CACHE[key] if r["split"] == split]


def emosynth_sources(datasets: Sequence, clips: int, seed: int, split: str = "train") -> dict[str, list]:
    """{dataset name: records} for the ``emosynth_*`` datasets of a phase (all over the same records)."""
    recs = emosynth_records(clips, seed, split)
    out = {}
    for d in datasets:
        name = d.name if hasattr(d, "name") else d["name"]
        if not name.startswith("emosynth"):
            raise ValueError(f"dataset {name!r} is not an EmoSynth dataset; give data.data_dir for real data")
        out[name] = recs
    return out


def eval_data(job):
    """(DataConfig, sources) of held-out EmoSynth data with the phase's datasets (tiny runs), else None."""
    if not job.emosynth.get("clips"):
        return None
    return emosynth_sources(job.data.datasets, job.emosynth["clips"], job.emosynth["seed"], "test")


def phase_inputs(job):
    """(tokenizer, train sources or None) for a phase job."""
    from emox_jax.tokenizer import load_tokenizer, tiny_tokenizer

    tok = tiny_tokenizer() if job.tokenizer == "tiny" else load_tokenizer(job.tokenizer)
    if tok.vocab_size > job.model.llm.vocab_size:
        raise ValueError(f"tokenizer {job.tokenizer!r} has {tok.vocab_size} tokens > model.llm.vocab_size "
                         f"{job.model.llm.vocab_size}")
    sources = None
    if job.emosynth.get("clips"):
        sources = emosynth_sources(job.data.datasets, job.emosynth["clips"], job.emosynth["seed"], "train")
    return tok, sources


def run_phase(config, workdir: str, **kw):
    from emox_jax.train.loop import train_phase
    from emox_jax.train.p2e_job import build_job

    job = build_job(config)
    tok, sources = phase_inputs(job)
    return train_phase(job, workdir, tokenizer=tok, sources=sources, eval_sources=eval_data(job), **kw)


def main(argv: Sequence[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    from emox_jax.train import distributed

    distributed.initialize()
    config, workdir = _CONFIG.value, _WORKDIR.value
    if config is None or not workdir:
        raise app.UsageError("--config and --workdir are required")
    if config.phase == "all":
        from emox_jax.train.curriculum import run_all

        results = run_all(config, workdir)
        stopped = any(r.stopped for r in results)
    else:
        res = run_phase(config, workdir)
        stopped = res.stopped
        print(f"[{res.phase}] step {res.final_step}{' (stopped: rerun to resume)' if stopped else ''}; "
              f"eval {res.eval}", flush=True)
    return 0


def _entry() -> None:
    app.run(lambda argv: sys.exit(main(argv)))


if __name__ == "__main__":
    _entry()
