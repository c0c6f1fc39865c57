"""Device mesh, the one logical-axis rules table, and helpers that turn logical names into shardings.

Every parameter in EmoX-JAX carries logical axis names (``nn.with_logical_partitioning``) and the residual
streams carry ``nn.with_logical_constraint``. This module is the only place that maps those names onto the
physical mesh axes ``('data', 'fsdp', 'tensor')``.

Default strategy: FSDP over all devices of a host slice (``fsdp=-1``), data parallel across slices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from flax import linen as nn
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")

# One table for every model. Weight dims of model width shard over fsdp; heads / MLP / vocab over tensor
# (a no-op while tensor == 1). Activation batch shards over (data, fsdp). Unlisted names are replicated.
LOGICAL_AXIS_RULES: tuple[tuple[str, Any], ...] = (
    # activations
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("kv_length", None),
    ("act_embed", None),
    ("act_heads", "tensor"),
    ("act_kv_heads", None),
    ("act_mlp", "tensor"),
    ("act_vocab", "tensor"),
    # parameters
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", None),  # Qwen2.5-1.5B has 2 KV heads: sharding them over tensor>2 would not divide.
    ("head_dim", None),
    ("vocab", "tensor"),
    ("layers", None),
    ("norm", None),
    ("conv", None),
    ("conv_in", None),
    ("conv_out", "fsdp"),
    ("queries", None),
    ("experts", None),
    ("lora_rank", None),
    ("patch", None),
    ("kv_embed", "fsdp"),
)


def logical_axis_rules(overrides: Sequence[tuple[str, Any]] | None = None) -> tuple[tuple[str, Any], ...]:
    """The rules table, with ``overrides`` (from a config) taking precedence name by name."""
    if not overrides:
        return LOGICAL_AXIS_RULES
    override_names = {name for name, _ in overrides}
    return tuple(overrides) + tuple(r for r in LOGICAL_AXIS_RULES if r[0] not in override_names)


def resolve_mesh_shape(shape: Sequence[int], num_devices: int) -> tuple[int, ...]:
    """Fill the one ``-1`` entry of ``shape`` so the product equals ``num_devices``.

    Raises ValueError naming the shape and the device count when they do not fit.
    """
    shape = [int(s) for s in shape]
    if len(shape) != len(MESH_AXES):
        raise ValueError(f"mesh shape {shape} must have {len(MESH_AXES)} entries for axes {MESH_AXES}")
    if shape.count(-1) > 1:
        raise ValueError(f"mesh shape {shape}: at most one entry may be -1")
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if num_devices % known:
            raise ValueError(f"mesh shape {shape} cannot fill {num_devices} devices ({num_devices} % {known} != 0)")
        shape[shape.index(-1)] = num_devices // known
    if math.prod(shape) != num_devices:
        raise ValueError(f"mesh shape {shape} has {math.prod(shape)} slots but there are {num_devices} devices")
    return tuple(shape)


def make_mesh(shape: Sequence[int] = (1, -1, 1), devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A ``('data', 'fsdp', 'tensor')`` mesh with Auto axis types.

    ``jax.make_mesh`` defaults to Explicit axes in recent JAX, under which Linen dense layers fail with
    "contracting dimensions are sharded"; we use Auto axes plus logical constraints (MaxText's default).
    With ``devices`` given, the mesh is built over exactly those (tests use this to pick subsets).
    """
    devices = list(jax.devices() if devices is None else devices)
    shape = resolve_mesh_shape(shape, len(devices))
    axis_types = (AxisType.Auto,) * len(MESH_AXES)
    if devices == list(jax.devices()):
        return jax.make_mesh(shape, MESH_AXES, axis_types=axis_types)
    return Mesh(np.asarray(devices).reshape(shape), MESH_AXES, axis_types=axis_types)


def logical_to_shardings(tree: Any, mesh: Mesh, rules=None) -> Any:
    """Turn a (possibly abstract) param tree with ``LogicallyPartitioned`` boxes into ``NamedSharding``s.

    Leaves without logical metadata are replicated.
    """
    rules = LOGICAL_AXIS_RULES if rules is None else rules
    specs = nn.get_partition_spec(tree)
    return nn.logical_to_mesh_sharding(specs, mesh, rules)


def logical_spec(names: Sequence[str | None], rules=None) -> P:
    """The mesh ``PartitionSpec`` for a tuple of logical names."""
    rules = LOGICAL_AXIS_RULES if rules is None else rules
    return nn.logical_to_mesh_axes(tuple(names), rules)


def batch_sharding(mesh: Mesh, ndim: int = 2) -> NamedSharding:
    """Sharding for a host-fed input array: leading axis over (data, fsdp), the rest replicated."""
    return NamedSharding(mesh, P(("data", "fsdp"), *([None] * (ndim - 1))))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def constrain(x: jax.Array, names: Sequence[str | None]) -> jax.Array:
    """Activation sharding constraint by logical names (a no-op outside a mesh / rules context)."""
    return nn.with_logical_constraint(x, tuple(names))
