"""The P2E phase trainer: sharded jit steps, grad accumulation, metrics, eval, Orbax checkpoints, preemption.

``train_phase(job, workdir, ...)`` runs (or resumes) one phase in ``workdir`` (layout in ``p2e_job``):

* mesh from ``job.mesh_shape`` (FSDP over all devices by default); params placed by their logical axes;
* resume: the latest FINALISED checkpoint of ``workdir/checkpoints`` (its metadata must name this phase,
  preset and trainable set, else ``CheckpointMismatchError`` names the key), restored onto the current mesh
  (any shape), data iterator included, so the losses continue exactly;
* each step: a global batch (each process feeds its own slice), one jitted update; NaN/inf loss skips the
  update, ``max_consecutive_nan`` in a row stops the run with ``NonFiniteLossError``;
* metrics (loss, per-task loss, lr, grad norm, tokens/s, samples/s, MFU) to TensorBoard, ``metrics.jsonl`` and a
  tqdm bar (process 0); periodic eval loss on held-out batches;
* SIGTERM: checkpoint at the current step, wait for Orbax to finalise it, return ``stopped=True``;
* ``loop.frozen_feature_cache_mb`` > 0: each clip's frozen-backbone features are computed once and cached on the
  host (``frozen_features.FrozenFeatureCache``, keyed by the media bytes), and the steps read them instead of
  running CLIP / the face encoder / HuBERT. Not checkpointed: a resumed run recomputes them on first sight.

``batch_source`` (tests, benchmarks): ``step -> global host batch`` instead of the Grain pipeline; each process
takes its rows, so runs on any number of processes see the same global batches.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import pathlib
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
from flax import linen as nn

from emox_jax import sharding as shd
from emox_jax.models.nano_emox import NanoEmoX, feature_keys
from emox_jax.train import checkpoint as ckpt_lib
from emox_jax.train import distributed
from emox_jax.train import p2e_job as J
from emox_jax.train import p2e_step as S
from emox_jax.train import flops as flops_lib
from emox_jax.train.frozen_features import FrozenFeatureCache
from emox_jax.train.optim import make_optimizer
from emox_jax.train.signals import StopRequest

log = logging.getLogger(__name__)

# Dense peak FLOP/s per chip for MFU (bf16 unless noted); unknown kinds leave MFU out.
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "TPU v4": 275e12, "TPU v5 lite": 197e12,
              "TPU v5e": 197e12, "TPU v5p": 459e12, "TPU v6 lite": 918e12, "TPU v6e": 918e12}


_STEPS: dict = {}


class NonFiniteLossError(RuntimeError):
    """The loss (or gradient norm) was NaN/inf for ``max_consecutive_nan`` steps in a row."""


@dataclasses.dataclass
class PhaseResult:
    phase: str
    workdir: str
    final_step: int
    stopped: bool              # True when a stop was requested (SIGTERM) before the last step
    losses: list[float]        # per-step training loss of the steps run in this session
    history: list[dict]        # logged means
    eval: dict                 # last eval metrics
    nan_skipped: int


def peak_flops(device, configured: float) -> float:
    if configured > 0:
        return configured
    kind = getattr(device, "device_kind", "")
    for k, v in PEAK_FLOPS.items():
        if k.lower() in kind.lower():
            return v
    return 0.0


def _process_rows(batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """This process's contiguous slice of a global host batch."""
    pc, pi = jax.process_count(), jax.process_index()
    out = {}
    for k, v in batch.items():
        n = v.shape[0] // pc
        out[k] = v[pi * n:(pi + 1) * n]
    return out


class _Logger:
    def __init__(self, workdir: pathlib.Path, enabled: bool):
        self.enabled = enabled
        self.tb = None
        self.path = workdir / "metrics.jsonl"
        if enabled:
            try:
                from tensorboardX import SummaryWriter

                self.tb = SummaryWriter(str(workdir / "tb"))
            except ImportError:  # TensorBoard is optional; metrics.jsonl always has everything
                self.tb = None

    def write(self, step: int, metrics: Mapping[str, float], prefix: str = "train") -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, "split": prefix, **{k: float(v) for k, v in metrics.items()}}) + "\n")
        if self.tb is not None:
            for k, v in metrics.items():
                if v is not None and math.isfinite(float(v)):
                    self.tb.add_scalar(f"{prefix}/{k}", float(v), step)
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def train_phase(job: J.PhaseJob, workdir: str | pathlib.Path, *, tokenizer=None, sources=None, eval_sources=None,
                batch_source: Callable[[int], Mapping[str, np.ndarray]] | None = None,
                stop_after: int | None = None, mesh_shape: tuple[int, ...] | None = None, mesh=None,
                log_fn: Callable[[str], None] | None = None) -> PhaseResult:
    """Run (or resume) one phase; returns a PhaseResult. ``stop_after``: behave as if SIGTERM arrived after
    that many steps of this session (tests)."""
    workdir = pathlib.Path(workdir).absolute()
    main = jax.process_index() == 0
    say = log_fn or (lambda s: print(s, flush=True) if main else None)
    workdir.mkdir(parents=True, exist_ok=True)
    lp = job.loop
    # Fail fast (before any compilation) when the work dir holds another phase's / preset's checkpoints.
    ck = ckpt_lib.Checkpointer(workdir / J.CKPT_DIR, max_to_keep=lp.keep_ckpts, async_save=lp.async_ckpt)
    latest = ck.latest_step()
    if latest is not None:
        try:
            check_checkpoint(ck, latest, job)
        except Exception:
            ck.close()
            raise
    mesh = mesh or shd.make_mesh(mesh_shape or job.mesh_shape)
    rules = shd.logical_axis_rules(job.mesh_rules)
    model = NanoEmoX(job.model)
    mods = job.modalities

    # ---- params, shardings, optimizer
    boxed = J.abstract_boxed(job.model)
    abstract_plain = nn.meta.unbox(boxed)
    J.check_regexes(job, abstract_plain)
    sh_full = S.param_shardings(boxed, mesh, rules)
    train_sh, frozen_sh = J.trainable_split(job, sh_full)
    abs_train, _ = J.trainable_split(job, abstract_plain)
    trainable_paths = [S.path_of(k) for k in _flat_keys(abs_train)]
    tx, schedule = make_optimizer(job.optim)
    st_sh = S.state_shardings(abs_train, train_sh, tx, mesh)
    full = J.initial_params(job, abstract_plain, sh_full, log=say)
    trainable, frozen = J.trainable_split(job, full)
    del full
    say(f"[{job.phase}] trainable {S.count(abs_train):,} params in {len(trainable_paths)} tensors; frozen "
        f"{S.count(J.trainable_split(job, abstract_plain)[1]):,}; modalities {mods}; mesh {dict(mesh.shape)}")

    # Frozen-backbone features cached per clip: the compiled steps then hold no backbone (loop docstring).
    features = None
    if lp.frozen_feature_cache_mb > 0 and feature_keys(mods):
        features = FrozenFeatureCache(job.model, frozen, mods, max_mb=lp.frozen_feature_cache_mb)

    # ---- data
    it = None
    if batch_source is None:
        from data_pipelines.pipeline import make_train_iterator

        pc = jax.process_count()
        if lp.batch_size % pc:
            raise ValueError(f"loop.batch_size {lp.batch_size} not divisible by {pc} processes")
        dcfg = dataclasses.replace(job.data, batch_size=lp.batch_size // pc)
        it = make_train_iterator(dcfg, tokenizer, sources=sources)

    # ---- checkpoints / resume
    abs_state = S.abstract_state(abs_train, st_sh, tx)
    if latest is not None:
        items, meta = ck.restore(latest, {"trainable": abs_state.trainable, "opt_state": _opt_item(abs_state)},
                                 data_iter=it if (it is not None) else None, expect=job.expect())
        o = items["opt_state"]
        state = S.P2EState(step=o["step"], trainable=items["trainable"], opt_state=o["opt"],
                           nan_streak=o["nan_streak"], nan_skipped=o["nan_skipped"])
        say(f"[{job.phase}] resumed from {workdir / J.CKPT_DIR / str(latest)}")
    else:
        state = S.init_state(trainable, tx, st_sh)
    del trainable

    # One jitted step per (model, optimizer, phase inputs, mesh) in this process: a resumed or repeated phase
    # (tests, the curriculum) reuses the compiled executables instead of compiling again.
    cache_key = (job.model, job.optim, mods, lp.grad_accum, lp.seed, mesh, tuple(rules))
    if cache_key not in _STEPS:
        _STEPS[cache_key] = (
            S.make_train_step(model, tx, st_sh, frozen_sh, mesh, rules, modalities=mods, schedule=schedule,
                              grad_accum=lp.grad_accum, seed=lp.seed),
            S.make_eval_step(model, st_sh, frozen_sh, mesh, rules, modalities=mods), {})
    train_step, eval_step, compiled = _STEPS[cache_key]
    meta = {"phase": job.phase, "preset": job.preset, "trainable_regexes": list(job.trainable_regexes),
            "trainable_paths": trainable_paths, "modalities": list(mods),
            "model": dataclasses.asdict(job.model), "config": job.config}

    def save(step: int) -> None:
        opt = {"opt": state.opt_state, "step": state.step, "nan_streak": state.nan_streak,
               "nan_skipped": state.nan_skipped}
        ck.save(step, {"trainable": state.trainable, "opt_state": opt}, metadata=meta, data_iter=it)

    logger = _Logger(workdir, main)
    start = int(jax.device_get(state.step))
    bar = None
    if main and lp.progress:
        from tqdm import tqdm

        bar = tqdm(total=lp.steps, initial=start, desc=job.phase, dynamic_ncols=True, leave=True)
    peak = peak_flops(jax.devices()[0], lp.peak_flops_per_device)
    losses, history, window = [], [], []
    # Per log window: samples, tokens, model FLOPs, and seconds spent compiling (left out of the rates).
    t_window, samples_window, tokens_window, flops_window, compile_window = time.perf_counter(), 0, 0.0, 0.0, 0.0
    last_eval: dict = {}
    stopped = False
    try:
        with StopRequest() as stop:
            step = start
            while step < lp.steps:
                host = next(it) if it is not None else _process_rows(batch_source(step))
                host = S.host_batch(host, mods)
                if features is not None:
                    host = features(host)
                batch = _shard(host, mesh)
                key = tuple((k, v.shape, str(v.dtype)) for k, v in sorted(batch.items()))
                if key not in compiled:
                    t_compile = time.perf_counter()
                    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
                        exe = train_step.jitted.lower(state, frozen, batch).compile()
                    flops = 0.0
                    if peak:  # MFU's numerator; on CPU (no known peak) nothing is traced
                        flops = _model_flops(job, train_step, lambda m: S.make_train_step(
                            m, tx, st_sh, frozen_sh, mesh, rules, modalities=mods, schedule=schedule,
                            grad_accum=lp.grad_accum, seed=lp.seed), (state, frozen, batch), mesh, rules, say)
                    compiled[key] = (exe, flops)
                    compile_window += time.perf_counter() - t_compile
                    distributed.barrier(f"{job.phase}:compiled:{len(compiled)}")   # first run together (Gloo)
                exe, flops = compiled[key]
                with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
                    state, m = exe(state, frozen, batch)
                step += 1
                m = jax.device_get(m)
                losses.append(float(m["loss"]))
                window.append(m)
                samples_window += int(host["input_ids"].shape[0]) * jax.process_count()
                tokens_window += float(m["tokens"])
                flops_window += flops
                if int(m["nan_streak"]) >= lp.max_consecutive_nan:
                    raise NonFiniteLossError(
                        f"[{job.phase}] loss or gradient norm was non-finite for {int(m['nan_streak'])} consecutive "
                        f"steps (up to step {step}; loop.max_consecutive_nan={lp.max_consecutive_nan}); the updates "
                        "were skipped. Lower optim.lr, check the data, or use float32 (loop.dtype).")
                if bar is not None:
                    bar.update(1)
                if step % lp.log_every == 0 or step == lp.steps:
                    dt = max(time.perf_counter() - t_window - compile_window, 1e-9)
                    agg = _mean(window)
                    agg.update(samples_per_s=samples_window / dt, tokens_per_s=tokens_window / dt,
                               steps_per_s=len(window) / dt)
                    if flops_window and peak:
                        agg["mfu"] = flops_window / dt / (peak * jax.device_count())
                    agg["nan_skipped"] = float(jax.device_get(state.nan_skipped))
                    history.append({"step": step, **agg})
                    logger.write(step, agg)
                    if bar is not None:
                        bar.set_postfix_str(f"loss={agg['loss']:.3f} lr={agg.get('lr', 0):.1e} "
                                            f"gnorm={agg['grad_norm']:.2f} {agg['samples_per_s']:.1f} samp/s")
                    window, samples_window, tokens_window, flops_window, compile_window = [], 0, 0.0, 0.0, 0.0
                    t_window = time.perf_counter()
                # Periodic held-out eval (the last step's eval runs after the final save below, once).
                if lp.eval_every and step % lp.eval_every == 0 and step < lp.steps and eval_sources is not None:
                    last_eval = evaluate_loss(job, eval_step, state, frozen, mesh, tokenizer, eval_sources, features)
                    logger.write(step, last_eval, prefix="eval")
                want_stop = stop.should_stop() or (stop_after is not None and step - start >= stop_after)
                if want_stop and step < lp.steps:
                    say(f"\n[{job.phase}] stop requested ({stop.signal_name or 'stop_after'}) at step {step}: "
                        "saving a checkpoint")
                    save(step)
                    stopped = True
                    break
                if lp.ckpt_every and step % lp.ckpt_every == 0 and step < lp.steps:
                    save(step)
            if not stopped:
                if ck.latest_step() != step:
                    save(step)
                if eval_sources is not None:
                    last_eval = evaluate_loss(job, eval_step, state, frozen, mesh, tokenizer, eval_sources, features)
                    logger.write(step, last_eval, prefix="eval")
    finally:
        ck.wait()   # a checkpoint counts only once Orbax has finalised it
        ck.close()
        if bar is not None:
            bar.close()
        logger.close()
    if features is not None:
        st = features.stats()
        say(f"[{job.phase}] frozen-feature cache (per clip and backbone): {st['misses']} computed and kept "
            f"({st['mb']:.1f} MB), {st['hits']} reused, {st['uncached']} recomputed past the "
            f"{lp.frozen_feature_cache_mb:g} MB cap")
    return PhaseResult(phase=job.phase, workdir=str(workdir), final_step=int(jax.device_get(state.step)),
                       stopped=stopped, losses=losses, history=history, eval=last_eval,
                       nan_skipped=int(jax.device_get(state.nan_skipped)))


def check_checkpoint(ck: ckpt_lib.Checkpointer, step: int, job: J.PhaseJob) -> dict:
    """Raise CheckpointMismatchError naming every metadata key (phase, preset, trainable set) that differs."""
    meta = ck.metadata(step)
    problems: list[str] = []
    ckpt_lib._diff(meta, ckpt_lib._jsonable(job.expect()), "", problems)
    if problems:
        raise ckpt_lib.CheckpointMismatchError(
            f"[{job.phase}] {ck.directory / str(step)} cannot be resumed by this job: " + "; ".join(problems))
    return meta


def _opt_item(abs_state: S.P2EState) -> dict:
    return {"opt": abs_state.opt_state, "step": abs_state.step, "nan_streak": abs_state.nan_streak,
            "nan_skipped": abs_state.nan_skipped}


def _flat_keys(tree) -> list[tuple]:
    from flax import traverse_util

    return list(traverse_util.flatten_dict(tree).keys())


def _model_flops(job: J.PhaseJob, train_step, make_step: Callable, args: tuple, mesh, rules,
                 say: Callable[[str], None]) -> float:
    """Model FLOPs of one train step (``train/flops.py``), traced from a twin step of ``countable(model)`` (no
    remat, XLA attention) unless the step already is one; 0.0 (no MFU) if the count fails, never a failed run."""
    try:
        countable = flops_lib.countable(job.model)
        step = train_step if countable == job.model else make_step(NanoEmoX(countable))
        with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
            return flops_lib.traced_flops(step.jitted, *args)
    except Exception as e:  # noqa: BLE001 - a metric must not stop training
        say(f"[{job.phase}] MFU left out: counting the step's FLOPs failed ({type(e).__name__}: {e})")
        return 0.0


def _shard(host: Mapping[str, np.ndarray], mesh) -> dict:
    from emox_jax.train.lm_step import shard_batch

    return shard_batch(host, mesh)


def _mean(window: list[Mapping[str, Any]]) -> dict[str, float]:
    out = {}
    for k in window[0]:
        vals = [float(w[k]) for w in window if math.isfinite(float(w[k]))]
        out[k] = float(np.mean(vals)) if vals else float("nan")
    return out


def evaluate_loss(job: J.PhaseJob, eval_step, state, frozen, mesh, tokenizer, eval_sources,
                  features: FrozenFeatureCache | None = None) -> dict[str, float]:
    """Mean CE (and per-task CE) over up to ``loop.eval_batches`` held-out batches of EACH of the phase's
    datasets (the eval pass reads datasets one after another, so a shared budget would only ever reach the
    first one: phase 3's held-out loss was MSA's alone). ``features``: the train loop's frozen-feature cache."""
    from data_pipelines.pipeline import make_eval_iterator
    from data_pipelines.schema import TASKS

    pc = jax.process_count()
    tot = np.zeros(()); cnt = np.zeros(()); ts = np.zeros(6); tc = np.zeros(6)  # noqa: E702
    for spec in job.data.datasets:
        dcfg = dataclasses.replace(job.data, datasets=(spec,), batch_size=job.loop.batch_size // pc)
        for i, b in enumerate(make_eval_iterator(dcfg, tokenizer, sources=eval_sources)):
            if i >= job.loop.eval_batches:
                break
            host = S.host_batch(b, job.modalities)
            if features is not None:
                host = features(host)
            out = jax.device_get(eval_step(state.trainable, frozen, _shard(host, mesh)))
            tot += out["ce_sum"]; cnt += out["count"]; ts += out["task_sum"]; tc += out["task_count"]  # noqa: E702
    res = {"loss": float(tot / max(cnt, 1))}
    for i, t in enumerate(TASKS):
        if tc[i] > 0:
            res[f"loss_{t}"] = float(ts[i] / tc[i])
    return res
