"""Scanned, rematerialised stacks of identical layers (one implementation for every tower).

Every homogeneous stack (ViT 24, HuBERT 24, Swin stage 3's 18, Q-Former, Qwen 28) runs under ``nn.scan`` so
compile time does not grow with depth, and under ``nn.remat`` with a policy named in the config.
Params of a scanned stack get a leading ``layers`` axis.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import linen as nn

# Names a config may use for `remat_policy`. "none" = no rematerialisation (best on CPU and for small towers).
REMAT_POLICIES: dict[str, Any] = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
    "everything": jax.checkpoint_policies.everything_saveable,
}


def remat_policy(name: str):
    if name not in REMAT_POLICIES:
        raise ValueError(f"unknown remat_policy {name!r}; choose one of {sorted(REMAT_POLICIES)}")
    return REMAT_POLICIES[name]


def scan_stack(block_cls: type[nn.Module], *, length: int, remat: str = "none", in_axes: Any = nn.broadcast,
               static_argnums: tuple[int, ...] = (), variable_axes: dict | None = None) -> type[nn.Module]:
    """Wrap ``block_cls`` (``__call__(carry, *args) -> (carry, y)``) as a scanned stack of ``length`` layers.

    ``in_axes`` describes the extra positional args (``nn.broadcast`` = same for every layer, ``0`` = per
    layer slice). ``static_argnums`` are counted from the first argument after ``self`` (for ``nn.remat``);
    keep static flags as module attributes instead when possible. ``variable_axes`` defaults to
    ``{'params': 0}``; add e.g. ``'cache': 0`` for a per-layer KV cache.
    """
    if remat != "none":
        block_cls = nn.remat(block_cls, policy=remat_policy(remat), prevent_cse=False,
                             static_argnums=static_argnums)
    return nn.scan(block_cls, variable_axes=variable_axes or {"params": 0},
                   split_rngs={"params": True, "dropout": True}, in_axes=in_axes, length=length,
                   metadata_params={nn.PARTITION_NAME: "layers"})
