"""The P2E train / eval steps: trainable/frozen split, global-batch CE, grad accumulation, NaN skipping.

Params are split by the phase's path regexes into ``trainable`` (differentiated, optimised, checkpointed every
save) and ``frozen`` (a separate, non-donated argument; never differentiated, never in the optimizer state,
never re-saved). Both are nested dicts with the model's paths; ``merge`` puts them back together.

Loss: mean token cross-entropy (fp32) over the supervised tokens of the GLOBAL batch (``loss_mask`` · ``valid``),
so it does not depend on the mesh or on gradient accumulation: every micro-batch returns its CE *sum* and token
count, gradients of the sums are accumulated and divided once by the total count. Per-task losses (task ids =
``data_pipelines.schema.TASKS``) are logged beside it.

A non-finite loss or gradient norm skips the update (params and optimizer state keep their old values), and
counts it in ``nan_streak`` (consecutive) and ``nan_skipped`` (total); the loop stops the run after a
configured streak.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn
from flax import struct, traverse_util
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from emox_jax import sharding as shd
from emox_jax.models.nano_emox import FEATURE_SOURCE, NanoEmoX
from emox_jax.train.lm_step import opt_state_shardings

NUM_TASKS = 6  # data_pipelines.schema.TASKS
STEP_KEYS = ("input_ids", "labels", "loss_mask", "attention_mask", "positions", "frames", "audio", "frame_pos",
             "face_pos", "audio_pos", "multi_pos", "task_id", "valid", *FEATURE_SOURCE)


@struct.dataclass
class P2EState:
    step: jax.Array          # [] int32: batches consumed (updates applied + skipped)
    trainable: Any           # nested dict of the phase's trainable params (fp32)
    opt_state: Any           # optimizer state over ``trainable`` only
    nan_streak: jax.Array    # [] int32: consecutive skipped (non-finite) steps
    nan_skipped: jax.Array   # [] int32: total skipped steps


# ------------------------------------------------------------------------------------------- param trees
def path_of(key: tuple) -> str:
    return "/".join(str(k) for k in key)


def split_params(params: Mapping, regexes: Sequence[str]) -> tuple[dict, dict]:
    """``(trainable, frozen)``: leaves whose "/"-path fully matches a regex go left. Works on boxed trees."""
    flat = traverse_util.flatten_dict(_plain(params))
    train = {k: v for k, v in flat.items() if any(re.fullmatch(rx, path_of(k)) for rx in regexes)}
    frozen = {k: v for k, v in flat.items() if k not in train}
    return traverse_util.unflatten_dict(train), traverse_util.unflatten_dict(frozen)


def merge(*trees: Mapping) -> dict:
    """Union of disjoint nested dicts (later trees win on overlap)."""
    flat: dict = {}
    for t in trees:
        flat.update(traverse_util.flatten_dict(_plain(t)))
    return traverse_util.unflatten_dict(flat)


def _plain(tree: Any) -> Any:
    """FrozenDict / nested mappings -> plain dicts (leaves untouched)."""
    if isinstance(tree, Mapping):
        return {k: _plain(v) for k, v in tree.items()}
    return tree


def count(tree: Any) -> int:
    return int(sum(math.prod(x.shape) for x in jax.tree.leaves(nn.meta.unbox(tree))))


def param_shardings(boxed_abstract: Any, mesh: Mesh, rules) -> Any:
    """NamedShardings from logical names; a mesh axis that does not divide a dim is dropped for that dim (the
    tiny preset's odd widths on 8 devices), so any mesh works and big dims still shard."""
    named = shd.logical_to_shardings(boxed_abstract, mesh, rules)
    shapes = nn.meta.unbox(boxed_abstract)

    def fix(sh, leaf):
        spec = tuple(sh.spec) + (None,) * (len(leaf.shape) - len(sh.spec))
        out = []
        for dim, ax in zip(leaf.shape, spec):
            axes = (ax,) if isinstance(ax, str) else tuple(ax or ())
            size = math.prod(mesh.shape[a] for a in axes) if axes else 1
            out.append(ax if axes and dim % size == 0 else None)
        return NamedSharding(mesh, P(*out))

    return jax.tree.map(fix, named, shapes)


def state_shardings(abs_trainable: Any, train_sh: Any, tx: optax.GradientTransformation, mesh: Mesh) -> P2EState:
    abs_tr = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abs_trainable, train_sh)
    opt_sh = opt_state_shardings(jax.eval_shape(tx.init, abs_tr), abs_tr, mesh)
    rep = shd.replicated(mesh)
    return P2EState(step=rep, trainable=train_sh, opt_state=opt_sh, nan_streak=rep, nan_skipped=rep)


def abstract_state(abs_trainable: Any, shardings: P2EState, tx: optax.GradientTransformation) -> P2EState:
    """``P2EState`` of ShapeDtypeStructs with ``shardings`` (an Orbax restore target; nothing allocated)."""
    def a(x, s):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s)

    abs_tr = jax.tree.map(a, abs_trainable, shardings.trainable)
    abs_opt = jax.eval_shape(tx.init, abs_tr)
    scalar = jax.ShapeDtypeStruct((), jnp.int32, sharding=shardings.step)
    return P2EState(step=scalar, trainable=abs_tr, opt_state=jax.tree.map(a, abs_opt, shardings.opt_state),
                    nan_streak=scalar, nan_skipped=scalar)


def init_state(trainable: Any, tx: optax.GradientTransformation, shardings: P2EState) -> P2EState:
    """A fresh state (step 0) around already-placed trainable params."""
    def f(tr):
        z = jnp.zeros((), jnp.int32)
        return P2EState(step=z, trainable=tr, opt_state=tx.init(tr), nan_streak=z, nan_skipped=z)

    return jax.jit(f, out_shardings=shardings)(trainable)


# ------------------------------------------------------------------------------------------------- loss
def loss_sums(model: NanoEmoX, params: Any, batch: Mapping[str, jax.Array], modalities: Sequence[str],
              rng: jax.Array | None, deterministic: bool) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``(ce_sum, aux)``: summed fp32 CE over supervised tokens; aux = count, task_sum [6], task_count [6]."""
    starts = {m: batch[f"{m}_pos"] for m in modalities}
    rngs = None if deterministic or rng is None else {"dropout": rng}
    features = {k: batch[k] for k in FEATURE_SOURCE if k in batch}   # precomputed frozen-backbone outputs
    logits = model.apply({"params": params}, batch["input_ids"], frames=batch.get("frames"),
                         audio=batch.get("audio"), positions=batch.get("positions"),
                         segment_ids=batch.get("attention_mask"), starts=starts, modalities=tuple(modalities),
                         deterministic=deterministic, rngs=rngs, features=features or None)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), batch["labels"])
    mask = batch["loss_mask"].astype(jnp.float32)
    if "valid" in batch:
        mask = mask * batch["valid"].astype(jnp.float32)[:, None]
    row_sum, row_cnt = (ce * mask).sum(1), mask.sum(1)
    task = jnp.clip(batch["task_id"], 0, NUM_TASKS - 1) if "task_id" in batch else jnp.zeros_like(row_sum, jnp.int32)
    aux = {"count": row_cnt.sum(), "task_sum": jax.ops.segment_sum(row_sum, task, NUM_TASKS),
           "task_count": jax.ops.segment_sum(row_cnt, task, NUM_TASKS)}
    return row_sum.sum(), aux


def _microbatches(batch: Mapping[str, jax.Array], n: int) -> dict[str, jax.Array]:
    """``[B, ...] -> [n, B/n, ...]`` with micro-batch i = rows i, i+n, ... (each spans every data shard)."""
    def f(x):
        if x.shape[0] % n:
            raise ValueError(f"batch of {x.shape[0]} rows is not divisible by grad_accum={n}")
        y = x.reshape((x.shape[0] // n, n) + x.shape[1:])
        return jnp.swapaxes(y, 0, 1)

    return {k: f(v) for k, v in batch.items()}


def _task_metrics(aux) -> dict[str, jax.Array]:
    from data_pipelines.schema import TASKS

    out = {}
    for i, t in enumerate(TASKS):
        c = aux["task_count"][i]
        out[f"loss_{t}"] = jnp.where(c > 0, aux["task_sum"][i] / jnp.maximum(c, 1.0), jnp.nan)
    return out


def make_train_step(model: NanoEmoX, tx: optax.GradientTransformation, shardings: P2EState, frozen_sh: Any,
                    mesh: Mesh, rules, *, modalities: Sequence[str], schedule: optax.Schedule | None = None,
                    grad_accum: int = 1, seed: int = 0, donate: bool = True) -> Callable:
    """``step(state, frozen, batch) -> (state, metrics)``, jitted with shardings (state donated).

    Metrics (replicated fp32): loss, grad_norm, lr, tokens, skipped (1 when this update was skipped),
    nan_streak, loss_<task> (NaN for tasks absent from the batch).
    """
    modalities = tuple(modalities)
    base = jax.random.key(seed)

    def grads_of(trainable, frozen, batch, rng):
        def f(tr):
            return loss_sums(model, merge(frozen, tr), batch, modalities, rng, deterministic=False)

        (s, aux), g = jax.value_and_grad(f, has_aux=True)(trainable)
        return s, aux, g

    def step_fn(state: P2EState, frozen, batch):
        rng = jax.random.fold_in(base, state.step)
        if grad_accum == 1:
            total, aux, grads = grads_of(state.trainable, frozen, batch, rng)
        else:
            mbs = _microbatches(batch, grad_accum)
            zero = (jnp.zeros((), jnp.float32), {"count": jnp.zeros(()), "task_sum": jnp.zeros((NUM_TASKS,)),
                                                 "task_count": jnp.zeros((NUM_TASKS,))},
                    jax.tree.map(jnp.zeros_like, state.trainable))

            def body(carry, xs):
                i, mb = xs
                s, a, g = grads_of(state.trainable, frozen, mb, jax.random.fold_in(rng, i))
                return jax.tree.map(jnp.add, carry, (s, a, g)), None

            (total, aux, grads), _ = jax.lax.scan(body, zero, (jnp.arange(grad_accum), mbs))
        denom = jnp.maximum(aux["count"], 1.0)
        loss = total / denom
        grads = jax.tree.map(lambda g: g / denom, grads)
        gnorm = optax.global_norm(grads)
        ok = jnp.isfinite(loss) & jnp.isfinite(gnorm)
        updates, new_opt = tx.update(grads, state.opt_state, state.trainable)
        new_tr = optax.apply_updates(state.trainable, updates)
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)  # noqa: E731
        streak = jnp.where(ok, 0, state.nan_streak + 1)
        new_state = P2EState(step=state.step + 1, trainable=keep(new_tr, state.trainable),
                             opt_state=keep(new_opt, state.opt_state), nan_streak=streak,
                             nan_skipped=state.nan_skipped + (~ok).astype(jnp.int32))
        metrics = {"loss": loss, "grad_norm": gnorm, "tokens": aux["count"], "skipped": (~ok).astype(jnp.float32),
                   "nan_streak": streak, **_task_metrics(aux)}
        if schedule is not None:
            metrics["lr"] = schedule(state.step)
        return new_state, {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}

    batch_sh = NamedSharding(mesh, P(("data", "fsdp")))
    jitted = jax.jit(step_fn, in_shardings=(shardings, frozen_sh, batch_sh),
                     out_shardings=(shardings, shd.replicated(mesh)), donate_argnums=(0,) if donate else ())

    def step(state, frozen, batch):
        with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
            return jitted(state, frozen, dict(batch))

    step.jitted = jitted
    return step


def make_eval_step(model: NanoEmoX, shardings: P2EState, frozen_sh: Any, mesh: Mesh, rules, *,
                   modalities: Sequence[str]) -> Callable:
    """``eval_step(trainable, frozen, batch) -> {ce_sum, count, task_sum [6], task_count [6]}`` (deterministic)."""
    modalities = tuple(modalities)

    def f(trainable, frozen, batch):
        s, aux = loss_sums(model, merge(frozen, trainable), batch, modalities, None, deterministic=True)
        return {"ce_sum": s, **aux}

    batch_sh = NamedSharding(mesh, P(("data", "fsdp")))
    jitted = jax.jit(f, in_shardings=(shardings.trainable, frozen_sh, batch_sh), out_shardings=shd.replicated(mesh))

    def step(trainable, frozen, batch):
        with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
            return jitted(trainable, frozen, dict(batch))

    return step


def host_batch(batch: Mapping[str, np.ndarray], modalities: Sequence[str]) -> dict[str, np.ndarray]:
    """The numeric arrays the step reads (media only when a modality needs them)."""
    keys = [k for k in STEP_KEYS if k in batch]
    mods = set(modalities)
    if not mods & {"frame", "face", "multi"}:
        keys = [k for k in keys if k != "frames"]
    if not mods & {"audio", "multi"}:
        keys = [k for k in keys if k != "audio"]
    return {k: np.asarray(batch[k]) for k in keys}
