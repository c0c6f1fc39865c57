"""Sharded train state, sharded init and a jitted, sharded train step (generic loss; an LM loss provided).

``TrainState(step, params, opt_state)`` holds plain (unboxed) arrays. Shardings come from the params' logical
axis names through ``emox_jax.sharding`` (FSDP/tensor per the rules table); the optimizer state inherits them
(``optax.tree_map_params``, because ``jax.eval_shape(tx.init, ...)`` drops shardings on an Auto mesh). The batch
is sharded on its leading axis over ``('data', 'fsdp')``.

Typical use::

    init_fn = lambda rng: model.init(rng, jnp.zeros((1, seq), jnp.int32))["params"]
    state, shardings = init_train_state(init_fn, tx, mesh, rng, rules)
    step = make_train_step(lm_loss_fn(model), tx, shardings, mesh, rules, schedule=schedule)
    state, metrics = step(state, shard_batch(batch, mesh))     # metrics: loss, grad_norm, lr, tokens

The P2E trainer reuses everything here with its own ``loss_fn(params, batch, rng) -> (loss, aux)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn
from flax import struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from emox_jax import sharding as shd
from emox_jax.train.optim import _key_name, trainable_mask

LossFn = Callable[[Any, Mapping[str, jax.Array], jax.Array], tuple[jax.Array, dict[str, jax.Array]]]


@struct.dataclass
class TrainState:
    step: jax.Array  # [] int32, number of updates applied
    params: Any  # plain arrays (no LogicallyPartitioned boxes)
    opt_state: Any


def _unbox_abstract(tree: Any) -> Any:
    """Strip ``Partitioned`` boxes without applying sharding constraints (which fail on abstract values)."""
    return jax.tree.map(lambda x: x.value if isinstance(x, nn.meta.AxisMetadata) else x, tree,
                        is_leaf=lambda x: isinstance(x, nn.meta.AxisMetadata))


def _abstract(tree: Any, shardings: Any) -> Any:
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), tree, shardings)


def opt_state_shardings(abs_opt: Any, abs_params: Any, mesh: Mesh) -> Any:
    """Shardings for an (abstract) optimizer state: a slot mirroring a param gets the param's sharding.

    A state leaf mirrors a param when the trailing dict keys of its path equal the param's path and the shapes
    agree (``...inner_state[0].mu['layers']['mlp']['up_proj']['kernel']``); everything else (step counts) is
    replicated. ``optax.tree_map_params`` would do this but fails on ``multi_transform`` states, whose frozen
    slots are ``MaskedNode``s where the param tree has leaves.
    """
    by_path = {tuple(_key_name(k) for k in path): leaf
               for path, leaf in jax.tree_util.tree_flatten_with_path(abs_params)[0]}

    def pick(path, leaf):
        keys = []
        for k in reversed(path):
            if not isinstance(k, jax.tree_util.DictKey):
                break
            keys.insert(0, _key_name(k))
        for i in range(len(keys)):
            p = by_path.get(tuple(keys[i:]))
            if p is not None and tuple(p.shape) == tuple(leaf.shape):
                return p.sharding
        return shd.replicated(mesh)

    return jax.tree_util.tree_map_with_path(pick, abs_opt)


def state_shardings(boxed_abstract_params: Any, tx: optax.GradientTransformation, mesh: Mesh,
                    rules: Sequence[tuple[str, Any]] | None = None) -> TrainState:
    """``TrainState`` of ``NamedSharding``s for params with logical annotations (abstract or concrete, boxed).

    Optimizer slots that mirror a param (Adam mu/nu) get that param's sharding; scalars (counts) are replicated;
    frozen params' slots are ``MaskedNode`` and hold nothing.
    """
    rules = shd.LOGICAL_AXIS_RULES if rules is None else rules
    param_sh = shd.logical_to_shardings(boxed_abstract_params, mesh, rules)
    abs_params = _abstract(_unbox_abstract(boxed_abstract_params), param_sh)
    opt_sh = opt_state_shardings(jax.eval_shape(tx.init, abs_params), abs_params, mesh)
    return TrainState(step=shd.replicated(mesh), params=param_sh, opt_state=opt_sh)


def abstract_train_state(boxed_abstract_params: Any, tx: optax.GradientTransformation, mesh: Mesh,
                         rules: Sequence[tuple[str, Any]] | None = None) -> TrainState:
    """The state as ``ShapeDtypeStruct``s carrying ``mesh``'s shardings (a restore target, no allocation)."""
    sh = state_shardings(boxed_abstract_params, tx, mesh, rules)
    params = _unbox_abstract(boxed_abstract_params)
    abs_params = _abstract(params, sh.params)
    abs_opt = jax.eval_shape(tx.init, abs_params)
    return TrainState(step=jax.ShapeDtypeStruct((), jnp.int32, sharding=sh.step), params=abs_params,
                      opt_state=_abstract(abs_opt, sh.opt_state))


def init_train_state(init_params: Callable[[jax.Array], Any], tx: optax.GradientTransformation, mesh: Mesh,
                     rng: jax.Array, rules: Sequence[tuple[str, Any]] | None = None
                     ) -> tuple[TrainState, TrainState]:
    """Initialise params and optimizer state directly in their shardings (no host-side full copy).

    ``init_params(rng)`` returns the (boxed) param tree, e.g. ``model.init(rng, ids)["params"]``.
    Returns ``(state, shardings)``.
    """
    rules = shd.LOGICAL_AXIS_RULES if rules is None else rules
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        boxed = jax.eval_shape(init_params, rng)
        shardings = state_shardings(boxed, tx, mesh, rules)

        def init(rng):
            params = nn.meta.unbox(init_params(rng))
            return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

        state = jax.jit(init, out_shardings=shardings)(rng)
    return state, shardings


def cross_entropy(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean token cross-entropy over supervised positions, in fp32.

    ``logits [B, T, V]``, ``targets [B, T]`` int, ``mask [B, T]`` (1 = supervised). Returns ``(loss, count)``;
    the mean is over the whole (global) batch, so it does not depend on how the batch is sharded.
    """
    ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
    mask = mask.astype(jnp.float32)
    count = mask.sum()
    return (ce * mask).sum() / jnp.maximum(count, 1.0), count


def lm_loss_fn(model: nn.Module, deterministic: bool = False) -> LossFn:
    """Loss for a causal LM ``model.apply({'params': p}, input_ids, positions=, segment_ids=, deterministic=)``.

    Batch keys: ``input_ids``, ``targets``, ``loss_mask`` ``[B, T]``; optional ``positions``, ``segment_ids``
    (packing; 0 = padding). ``rng`` feeds dropout (LoRA dropout).
    """

    def loss_fn(params, batch, rng):
        logits = model.apply({"params": params}, batch["input_ids"], positions=batch.get("positions"),
                             segment_ids=batch.get("segment_ids"), deterministic=deterministic,
                             rngs={"dropout": rng})
        loss, count = cross_entropy(logits, batch["targets"], batch["loss_mask"])
        return loss, {"tokens": count}

    return loss_fn


def make_train_step(loss_fn: LossFn, tx: optax.GradientTransformation, shardings: TrainState, mesh: Mesh,
                    rules: Sequence[tuple[str, Any]] | None = None, *, schedule: optax.Schedule | None = None,
                    trainable_regexes: Sequence[str] | None = None, seed: int = 0, donate: bool = True
                    ) -> Callable[[TrainState, Mapping[str, jax.Array]], tuple[TrainState, dict[str, jax.Array]]]:
    """``step(state, batch) -> (state, metrics)``: one jitted update with in/out shardings and donated state.

    Metrics (replicated fp32 scalars): ``loss``, ``grad_norm`` (over trainable params when
    ``trainable_regexes`` is given), ``lr`` (the rate used for this update, when ``schedule`` is given), plus
    whatever ``loss_fn`` returns in its aux dict. Batch arrays must be ``[B, ...]`` with B divisible by
    data×fsdp (``shard_batch`` places host arrays).
    """
    rules = shd.LOGICAL_AXIS_RULES if rules is None else rules
    base_rng = jax.random.key(seed)

    def step_fn(state: TrainState, batch):
        rng = jax.random.fold_in(base_rng, state.step)
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, rng)
        if trainable_regexes is not None:
            mask = trainable_mask(grads, trainable_regexes)
            grad_norm = optax.global_norm(jax.tree.map(lambda g, m: g if m else jnp.zeros((), g.dtype), grads, mask))
        else:
            grad_norm = optax.global_norm(grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": loss, "grad_norm": grad_norm, **aux}
        if schedule is not None:
            metrics["lr"] = jnp.asarray(schedule(state.step), jnp.float32)
        metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
        return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

    batch_sh = NamedSharding(mesh, P(("data", "fsdp")))  # a prefix: leading axis sharded, the rest replicated
    jitted = jax.jit(step_fn, in_shardings=(shardings, batch_sh), out_shardings=(shardings, shd.replicated(mesh)),
                     donate_argnums=(0,) if donate else ())

    def step(state: TrainState, batch: Mapping[str, jax.Array]):
        # The rules/mesh context must be active while tracing, for the activation constraints inside the model.
        with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
            return jitted(state, dict(batch))

    step.jitted = jitted  # for .lower(...).compile() / cost analysis in benchmarks
    return step


def shard_batch(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Host arrays (this process's slice of the global batch) → global arrays sharded over ('data','fsdp')."""
    out = {}
    for k, v in batch.items():
        v = np.asarray(v)
        out[k] = jax.make_array_from_process_local_data(shd.batch_sharding(mesh, v.ndim), v)
    return out
