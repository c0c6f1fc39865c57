"""Config of evaluation sweeps (``python -m launch.eval --config=configs/eval.py:sweep``).

``get_config("sweep")`` evaluates with real-size settings (all branches, every EmoSynth task); ``"sweep,tiny"``
uses a small batch, short answers and few samples (CPU smoke runs, tests). Override on the command line:

    --config.checkpoints=runs/quickstart            (comma-separated work dirs / checkpoint dirs)
    --config.datasets=emosynth:mer,emosynth:msa     (``<source>:<task>``; ``emosynth`` alone = all six tasks)
    --config.steps=100,200                          (default: every finalised step)
    --config.workdir=runs/eval_sweep --config.eval.batch_size=16 --config.mesh.shape="(1,-1,1)"

Sections: top level (checkpoints, datasets, steps, workdir), ``eval`` (see ``EVAL_KEYS``), ``mesh``
(``shape``: ``(data, fsdp, tensor)``; the batch is sharded over data x fsdp). ``build(config)`` validates and
returns ``(sweep dict for emox_jax.eval.sweep.run_sweep, MeshConfig)``; errors name the key.
"""

from __future__ import annotations

import ml_collections

from configs import common
from emox_jax.config_utils import ConfigError

SECTIONS = ("checkpoints", "datasets", "steps", "workdir", "eval", "mesh")
SIZES = ("full", "tiny")
# eval keys and their meaning (values in _eval_section).
EVAL_KEYS = {
    "batch_size": "rows per process per device call (global batch = this x processes; divisible by data*fsdp)",
    "max_new_tokens": "new-token budget for every task (0 = the per-task defaults of emox_jax.infer.predict)",
    "mode": "modality mode of the prompts (a data_pipelines.schema.MODALITY_MODES entry)",
    "splits": "comma-separated subset of validation,test",
    "max_samples": "cap per dataset split (0 = all)",
    "score_mode": "clean (default) or parity (the reference's quirks)",
    "report_best_on_test": "also report the reference's best-on-test pick (named as a defect)",
    "plots": "write PNG plots of every metric against step",
    "emosynth_clips": "EmoSynth corpus size (its held-out 20% is a split)",
    "emosynth_seed": "EmoSynth seed of the test corpus (validation uses seed + 1)",
    "data_dir": "TFDS data dir of prepared real datasets",
    "val_split": "validation split name of real datasets (required for selection)",
    "test_split": "test split name of real datasets",
    "length_multiple": "prompt lengths are padded up to a multiple of this (fewer compiles)",
    "num_threads": "pipeline decode threads",
}


def _eval_section(size: str) -> ml_collections.ConfigDict:
    tiny = size == "tiny"
    return ml_collections.ConfigDict({
        "batch_size": 8 if tiny else 32, "max_new_tokens": 12 if tiny else 0,
        "mode": "multiface_audio_face_frame_text", "splits": "validation,test", "max_samples": 8 if tiny else 0,
        "score_mode": "clean", "report_best_on_test": False, "plots": True,
        "emosynth_clips": 40 if tiny else 500, "emosynth_seed": 1234, "data_dir": "", "val_split": "validation",
        "test_split": "test", "length_multiple": 64, "num_threads": 2})


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    words = common.parse_arg(arg, {"kind": ("sweep",), "size": SIZES}, {"kind": "sweep", "size": "full"})
    cfg = ml_collections.ConfigDict({
        "checkpoints": "", "datasets": "emosynth", "steps": "", "workdir": "runs/eval_sweep",
        "eval": _eval_section(words["size"]), "mesh": common.mesh_section((1, -1, 1))})
    return common.lock(cfg)


def build(config: ml_collections.ConfigDict, num_devices: int | None = None):
    """(flat sweep dict, MeshConfig), validated."""
    common.check_sections(config, SECTIONS)
    unknown = [k for k in config.eval.keys() if k not in EVAL_KEYS]
    if unknown:
        raise ConfigError(f"unknown config key eval.{unknown[0]}; valid keys: {sorted(EVAL_KEYS)}")
    mesh = common.build_mesh_config(config.mesh)
    ev = config.eval.to_dict()
    if ev["score_mode"] not in ("clean", "parity"):
        raise ConfigError(f"eval.score_mode must be 'clean' or 'parity', got {ev['score_mode']!r}")
    if ev["batch_size"] < 1 or ev["max_new_tokens"] < 0 or ev["max_samples"] < 0:
        raise ConfigError("eval.batch_size must be >= 1, eval.max_new_tokens and eval.max_samples >= 0")
    from data_pipelines.schema import MODALITY_MODES
    if ev["mode"] not in MODALITY_MODES:
        raise ConfigError(f"eval.mode {ev['mode']!r} is not one of {MODALITY_MODES}")
    if not str(config.checkpoints).strip():
        raise ConfigError("checkpoints is empty: pass --config.checkpoints=<work dir or checkpoint dir>[,...]")
    if num_devices is not None:
        from emox_jax.sharding import resolve_mesh_shape
        shape = resolve_mesh_shape(mesh.shape, num_devices)
        common.check_batch_divisible(ev["batch_size"], shape, where="eval.batch_size")
    flat = {"checkpoints": str(config.checkpoints), "datasets": str(config.datasets), "steps": str(config.steps),
            "workdir": str(config.workdir), **ev}
    return flat, mesh
