"""Splicing modality tokens into the LM input embeddings at known placeholder positions (spec §3.3).

The data pipeline emits, per row and modality, the start of the placeholder run (``*_pos``, -1 when the row has
no such run). Splicing is one ``dynamic_update_slice`` per row (``vmap``), with no search over token ids, so it
is jit-safe and costs O(N·D) per row. A row whose position is -1 keeps its embeddings unchanged.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def splice_rows(embeds: jax.Array, tokens: jax.Array, starts: jax.Array) -> jax.Array:
    """``embeds [B, L, D]`` with ``tokens [B, N, D]`` written at ``[b, starts[b]:starts[b]+N]``.

    ``starts [B]`` int; -1 (any negative) leaves that row untouched. A start past ``L - N`` would be clamped by
    ``dynamic_update_slice`` (silently shifting the tokens), so the caller's pipeline guarantees the run fits
    (it never truncates a placeholder run).
    """
    if embeds.ndim != 3 or tokens.ndim != 3 or tokens.shape[0] != embeds.shape[0] \
            or tokens.shape[2] != embeds.shape[2]:
        raise ValueError(f"splice_rows: embeds [B, L, D] and tokens [B, N, D] must agree on B and D, got "
                         f"{tuple(embeds.shape)} and {tuple(tokens.shape)}")
    if tokens.shape[1] > embeds.shape[1]:
        raise ValueError(f"splice_rows: {tokens.shape[1]} modality tokens do not fit a sequence of "
                         f"{embeds.shape[1]}")
    tokens = tokens.astype(embeds.dtype)

    def one(e, t, s):
        new = jax.lax.dynamic_update_slice(e, t, (jnp.maximum(s, 0), 0))
        return jnp.where(s >= 0, new, e)

    return jax.vmap(one)(embeds, tokens, starts.astype(jnp.int32))
