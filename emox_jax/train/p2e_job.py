"""A validated P2E phase job (from ``configs/p2e.py``) and the model params it starts from.

Params of a phase = base model (``job.base``: a params dir from ``launch.convert`` / phase 0, or a random init
from ``loop.seed``) overlaid, in order, with the ``trainable`` item of each ``init_from`` phase's final
checkpoint (later overrides earlier, as the reference's ``ckpt``, ``ckpt_2`` loading), then split into the
phase's trainable / frozen sub-trees.

Checkpoint layout of a phase work dir::

    WORKDIR/checkpoints/<step>/trainable/   Orbax pytree: the phase's trainable params (fp32)
                              /opt_state/   Orbax pytree: {"opt": optax state, "step", "nan_streak", "nan_skipped"}
                              /data_iter/   Grain iterator state (JSON), when the Grain pipeline feeds the run
                              /meta/        JSON: phase, preset, step, trainable_paths, model (NanoEmoXConfig),
                                            modalities, config (the whole ConfigDict), versions
    WORKDIR/tb/                             TensorBoard events        WORKDIR/metrics.jsonl   logged means
    BASE/params/...                         (a params dir: one Orbax step ``0`` with item ``params``, ``meta``)
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn
from flax import traverse_util

from emox_jax.config_utils import ConfigError, from_config
from emox_jax.models.nano_emox import MODALITIES, NanoEmoXConfig, init_params
from emox_jax.train import checkpoint as ckpt_lib
from emox_jax.train.optim import OptimConfig
from emox_jax.train.p2e_step import merge, path_of, split_params

CKPT_DIR = "checkpoints"


@dataclasses.dataclass(frozen=True)
class P2ELoop:
    batch_size: int = 8           # global batch (all processes)
    steps: int = 100
    grad_accum: int = 1
    log_every: int = 10
    eval_every: int = 0           # 0 = only at the end
    eval_batches: int = 4
    ckpt_every: int = 50          # 0 = only at the end
    keep_ckpts: int = 2
    async_ckpt: bool = True
    seed: int = 0
    max_consecutive_nan: int = 5
    dtype: str = "float32"        # compute dtype of every part (softmax, norms, logits, loss stay fp32)
    backbone_param_dtype: str = ""  # "" = as configured; "bfloat16" stores the frozen backbones in bf16
    remat: str = "none"
    peak_flops_per_device: float = 0.0  # 0 = from the device kind (MFU left out when unknown)
    progress: bool = True
    # > 0: cache each clip's frozen-backbone features (CLIP, face encoder, HuBERT) on the host, up to this many MB
    # (emox_jax/train/frozen_features.py); the compiled steps then hold no backbone. 0 = run them every step.
    frozen_feature_cache_mb: float = 0.0

    def validate(self) -> None:
        for n in ("batch_size", "steps", "grad_accum", "log_every", "keep_ckpts", "max_consecutive_nan"):
            if getattr(self, n) <= 0:
                raise ValueError(f"{n} must be > 0, got {getattr(self, n)}")
        if self.batch_size % self.grad_accum:
            raise ValueError(f"batch_size {self.batch_size} is not divisible by grad_accum {self.grad_accum}")
        if self.frozen_feature_cache_mb < 0:
            raise ValueError(f"frozen_feature_cache_mb must be >= 0, got {self.frozen_feature_cache_mb}")
        if self.dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype {self.dtype!r} must be 'float32' or 'bfloat16'")


@dataclasses.dataclass(frozen=True)
class PhaseJob:
    phase: str
    preset: str
    model: NanoEmoXConfig      # dtype/remat applied
    optim: OptimConfig
    data: Any                  # data_pipelines.pipeline.DataConfig
    loop: P2ELoop
    mesh_shape: tuple[int, ...]
    mesh_rules: tuple
    init_from: tuple[str, ...]
    base: str
    tokenizer: str
    emosynth: dict
    config: dict               # the whole section, JSON-able (checkpoint metadata)

    @property
    def modalities(self) -> tuple[str, ...]:
        from data_pipelines.prompts import MODE_MODALITIES

        mods = {m for d in self.data.datasets for m in MODE_MODALITIES[d.modality_mode] if m != "text"}
        return tuple(m for m in MODALITIES if m in mods)

    @property
    def trainable_regexes(self) -> tuple[str, ...]:
        return tuple(self.optim.trainable_regexes)

    def expect(self) -> dict:
        """What a checkpoint of this phase must say about itself (a mismatch names the key)."""
        return {"phase": self.phase, "preset": self.preset, "trainable_regexes": list(self.trainable_regexes)}


def build_job(config) -> PhaseJob:
    """Validate a phase config (``configs/p2e.py:PHASE[,preset]``) into a PhaseJob."""
    from configs import common
    from configs import nano_emox as presets
    from data_pipelines.pipeline import data_config

    common.check_sections(config, ("phase", "preset", "model", "optim", "data", "loop", "mesh", "init_from", "base",
                                   "tokenizer", "emosynth"))
    loop = from_config(P2ELoop, config.loop, where="loop")
    model = presets.build(config.model)
    if loop.dtype != "float32" or loop.backbone_param_dtype:
        model = model.with_dtype(loop.dtype, loop.backbone_param_dtype or None)
    if loop.remat != "none":
        model = model.with_remat(loop.remat)
    optim = common.build_optim_config(config.optim)
    data = data_config(config.data)
    mesh = common.build_mesh_config(config.mesh)
    counts = model.token_counts
    for m in ("frame", "face", "audio", "multi"):
        if getattr(data, f"{m}_tokens") != counts[m]:
            raise ConfigError(f"data.{m}_tokens={getattr(data, f'{m}_tokens')} but the model makes {counts[m]} "
                              f"{m} tokens (model.{m}_tokens)")
    if data.image_size != model.clip.image_size:
        raise ConfigError(f"data.image_size={data.image_size} != model.clip.image_size={model.clip.image_size}")
    if optim.total_steps < loop.steps:
        raise ConfigError(f"optim.total_steps={optim.total_steps} < loop.steps={loop.steps}")
    if data.max_length > model.llm.max_position_embeddings:
        raise ConfigError(f"data.max_length={data.max_length} > model.llm.max_position_embeddings")
    job = PhaseJob(phase=str(config.phase), preset=str(config.preset), model=model, optim=optim, data=data,
                   loop=loop, mesh_shape=tuple(mesh.shape), mesh_rules=tuple(mesh.rules),
                   init_from=tuple(str(x) for x in config.init_from), base=str(config.base),
                   tokenizer=str(config.tokenizer), emosynth=dict(config.emosynth.to_dict()),
                   config=json.loads(config.to_json_best_effort()))
    if not job.modalities and job.phase != "phase0":
        raise ConfigError("the phase's datasets carry no modality (all modes are 'text')")
    return job


# ------------------------------------------------------------------------------------------------ params
def abstract_boxed(model: NanoEmoXConfig) -> Any:
    """Boxed abstract params of the full model (eval_shape; nothing allocated)."""
    from emox_jax.models.nano_emox import abstract_params

    return abstract_params(model, batch=1, length=max(64, sum(model.token_counts.values()) + 2))


def subtree_like(abstract: Mapping, paths: Sequence[str]) -> dict:
    """The sub-tree of ``abstract`` holding exactly ``paths`` (raises naming a missing path)."""
    flat = {path_of(k): (k, v) for k, v in traverse_util.flatten_dict(dict(abstract)).items()}
    missing = [p for p in paths if p not in flat]
    if missing:
        raise ckpt_lib.CheckpointMismatchError(f"checkpoint params {missing[:5]} (of {len(missing)}) do not exist in "
                                               "this model: a different preset or model config?")
    return traverse_util.unflatten_dict({flat[p][0]: flat[p][1] for p in paths})


def with_shardings(abstract: Any, shardings: Any) -> Any:
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)


def save_params(directory: str | pathlib.Path, params: Any, metadata: Mapping[str, Any]) -> None:
    """Write a params dir (base model: phase 0 output or ``launch.convert``)."""
    with ckpt_lib.Checkpointer(directory, max_to_keep=1, async_save=False) as ck:
        ck.save(0, {"params": params}, metadata=dict(metadata))
        ck.wait()


def load_params(directory: str, abstract_sharded: Any, expect: Mapping[str, Any] | None = None) -> Any:
    params, _ = ckpt_lib.restore_params_only(directory, abstract_sharded, item="params", expect=expect)
    return params


def initial_params(job: PhaseJob, abstract_plain: Any, shardings: Any, log=print) -> dict:
    """The full param tree this phase starts from (base + init_from overlays), placed with ``shardings``."""
    if job.base:
        log(f"[{job.phase}] base model from {job.base}")
        params = load_params(job.base, with_shardings(abstract_plain, shardings), expect={"preset": job.preset})
    else:
        params = _init_fn(job.model, shardings)(jax.random.key(job.loop.seed))
    for d in job.init_from:
        params = overlay_from(d, params, abstract_plain, shardings, job, log)
    return params


_INIT_FNS: dict = {}


def _init_fn(model: NanoEmoXConfig, shardings: Any):
    """The jitted random init for ``model`` placed with ``shardings``, compiled once per process."""
    flat = jax.tree.leaves(shardings)
    key = (model, tuple(flat), jax.tree.structure(shardings))
    if key not in _INIT_FNS:
        length = max(64, sum(model.token_counts.values()) + 2)
        _INIT_FNS[key] = jax.jit(lambda r: nn.meta.unbox(init_params(model, r, batch=1, length=length)),
                                 out_shardings=shardings)
    return _INIT_FNS[key]


def overlay_from(workdir: str, params: dict, abstract_plain: Any, shardings: Any, job: PhaseJob, log=print) -> dict:
    """Replace params with the ``trainable`` item of ``workdir``'s latest finalised checkpoint."""
    ck_dir = pathlib.Path(workdir) / CKPT_DIR
    with ckpt_lib.Checkpointer(ck_dir, async_save=False) as ck:
        step = ck.latest_step()
        if step is None:
            raise FileNotFoundError(f"[{job.phase}] init_from {workdir}: no finalised checkpoint in {ck_dir}")
        meta = ck.metadata(step)
        if meta.get("preset") != job.preset:
            raise ckpt_lib.CheckpointMismatchError(
                f"[{job.phase}] init_from {ck_dir / str(step)}: preset: checkpoint has {meta.get('preset')!r}, "
                f"expected {job.preset!r}")
        paths = list(meta["trainable_paths"])
        target = subtree_like(abstract_plain, paths)
        sh = subtree_like(shardings, paths)
        items, _ = ck.restore(step, {"trainable": with_shardings(target, sh)})
    log(f"[{job.phase}] loaded {len(paths)} tensors trained in {meta.get('phase')} (step {step}) from {workdir}")
    return merge(params, items["trainable"])


def load_for_inference(workdir: str, step: int | None = None, *, mesh=None):
    """(model_config, params, meta) of a trained phase dir: base + init_from chain + this phase's trainable.

    The predict-facing API: ``cfg, params, meta = load_for_inference("runs/quick/phase3")``; then
    ``NanoEmoX(cfg).apply({"params": params}, input_ids, frames=..., audio=..., starts=..., modalities=...)`` or
    ``embed_inputs`` + ``emox_jax.infer.generate.generate_from_embeds(params["decoder"], ...)``.
    """
    import ml_collections

    from emox_jax.sharding import make_mesh
    from emox_jax.train.p2e_step import param_shardings

    ck_dir = pathlib.Path(workdir) / CKPT_DIR
    with ckpt_lib.Checkpointer(ck_dir, async_save=False) as ck:
        meta = ck.metadata(step)
    job = build_job(ml_collections.ConfigDict(meta["config"]))
    mesh = mesh or make_mesh((1, -1, 1))
    from emox_jax.sharding import logical_axis_rules

    boxed = abstract_boxed(job.model)
    sh = param_shardings(boxed, mesh, logical_axis_rules(job.mesh_rules))
    abstract_plain = nn.meta.unbox(boxed)
    params = initial_params(job, abstract_plain, sh, log=lambda *_: None)
    with ckpt_lib.Checkpointer(ck_dir, async_save=False) as ck:
        s = meta["step"]
        paths = list(meta["trainable_paths"])
        items, _ = ck.restore(s, {"trainable": with_shardings(subtree_like(abstract_plain, paths),
                                                              subtree_like(sh, paths))})
    return job.model, merge(params, items["trainable"]), meta


def trainable_split(job: PhaseJob, tree: Any) -> tuple[dict, dict]:
    return split_params(tree, job.trainable_regexes)


def check_regexes(job: PhaseJob, abstract_plain: Any) -> list[str]:
    from emox_jax.train.optim import check_trainable

    return check_trainable(abstract_plain, job.optim)


__all__ = ("CKPT_DIR", "P2ELoop", "PhaseJob", "abstract_boxed", "build_job", "check_regexes", "initial_params",
           "load_for_inference", "load_params", "overlay_from", "save_params", "subtree_like", "trainable_split",
           "with_shardings")
