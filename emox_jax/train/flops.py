"""Model FLOPs of a step, counted on its jaxpr: the numerator of MFU.

Why not XLA's ``cost_analysis()``: it counts a while loop's body once, and every stack here is an ``nn.scan``
(the 28-layer decoder counts as one layer), and on GPU the compiled module's matmuls are cuBLAS custom calls
that it does not count at all. Measured for the ``nano_emox`` phase-3 step (batch 8 x 1024, bf16, remat
``dots_no_batch``): the compiled module's cost analysis said 0.59 TFLOP per step on an H200 (MFU 0.18 %), the
lowered module's 11.7 TFLOP on CPU; this count says 72.6 TFLOP (74.0 counting the remat's recomputation).

What is counted: 2 x multiply-adds of every ``dot_general`` and ``conv_general_dilated`` in the traced program
(forward, and the backward exactly as autodiff builds it: a frozen weight gets no weight-gradient product, a
frozen tower no backward at all), a ``scan`` body times its length, a ``cond`` as its costliest branch, a
``while`` body once (its trip count is not static). Elementwise work, softmax and norms are not counted (the
matmul convention of MaxText's MFU). Trace a step of ``countable(model)`` (no remat, attention as XLA dots) to
get model FLOPs (MFU): with remat, recomputed forwards are counted too (HFU), and a fused attention kernel
(cuDNN's ``dot_product_attention_fwd/bwd`` primitives, a Pallas call) is opaque to the count. A ``shard_map``
body sees one shard's shapes, so it is counted once per device of its mesh.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
from jax.extend import core as jex_core


def _sub_jaxprs(value: Any):
    """Jaxprs held in one equation parameter (a jaxpr, a closed jaxpr, or a tuple of them)."""
    if isinstance(value, jex_core.ClosedJaxpr):
        yield value.jaxpr
    elif isinstance(value, jex_core.Jaxpr):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _sub_jaxprs(v)


def _dot_flops(eqn) -> float:
    lhs = eqn.invars[0].aval
    (contract_lhs, _), _ = eqn.params["dimension_numbers"]
    k = math.prod(lhs.shape[d] for d in contract_lhs)
    return 2.0 * math.prod(eqn.outvars[0].aval.shape) * k


def _conv_flops(eqn) -> float:
    rhs = eqn.invars[1].aval
    out_features = rhs.shape[eqn.params["dimension_numbers"].rhs_spec[0]]
    # Each output element takes (in_features / groups) x kernel-window multiply-adds = |rhs| / out_features.
    return 2.0 * math.prod(eqn.outvars[0].aval.shape) * math.prod(rhs.shape) / out_features


def jaxpr_flops(jaxpr: jex_core.Jaxpr | jex_core.ClosedJaxpr) -> float:
    """Matmul + convolution FLOPs of a (closed) jaxpr, recursing into calls, scans, conds and custom rules."""
    if isinstance(jaxpr, jex_core.ClosedJaxpr):
        jaxpr = jaxpr.jaxpr
    total = 0.0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            total += _dot_flops(eqn)
        elif name == "conv_general_dilated":
            total += _conv_flops(eqn)
        elif name == "cond":
            total += max(jaxpr_flops(b) for b in eqn.params["branches"])
        elif name == "scan":
            total += eqn.params["length"] * jaxpr_flops(eqn.params["jaxpr"])
        elif name == "while":
            total += jaxpr_flops(eqn.params["body_jaxpr"])
        elif name == "shard_map":
            total += getattr(eqn.params.get("mesh"), "size", 1) * jaxpr_flops(eqn.params["jaxpr"])
        else:  # pjit, remat, custom_jvp/vjp calls, shard_map, ...: the program they hold
            for key, value in eqn.params.items():
                if key in ("fwd_jaxpr_thunk", "bwd", "jvp_jaxpr_fun", "jvp_jaxpr_thunk"):
                    continue  # rules, not the program run
                total += sum(jaxpr_flops(j) for j in _sub_jaxprs(value))
    return total


def countable(model):
    """A ``NanoEmoXConfig`` whose traced step shows every matmul: no remat, attention as XLA dots everywhere."""
    return model.with_remat("none").with_attention("xla")


def traced_flops(fn: Callable, *args, **kwargs) -> float:
    """FLOPs of ``fn(*args, **kwargs)`` (arrays or ``jax.ShapeDtypeStruct``s; traced, nothing is run)."""
    return jaxpr_flops(jax.make_jaxpr(fn)(*args, **kwargs))


__all__ = ["countable", "jaxpr_flops", "traced_flops"]
