"""Batched autoregressive generation for ``Qwen2ForCausalLM``: one prefill, then a ``lax.while_loop`` decode.

The whole function is jittable (model and generation configs are static, hashable dataclasses). Prompts of
different lengths are right-padded into ``[B, T]`` with per-row ``lengths``; padding slots are written to the
cache but marked invalid, and each row's RoPE positions continue from its own length, so results do not depend
on how much padding a row got. ``generate_from_embeds`` prefills from ``inputs_embeds [B, T, D]`` instead (the
multimodal path: modality embeddings spliced into the prompt).

Output: ``tokens [B, max_new_tokens]`` (``pad_id`` after a row stops) and ``lengths [B]`` = tokens produced per
row, a terminating stop token or the last token of a stop sequence included (as transformers keeps the EOS).
Deterministic for a given ``rng`` (step ``i`` samples with ``fold_in(rng, i)``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from emox_jax.infer.sampling import SamplingConfig, sample_logits
from emox_jax.models.qwen2 import Qwen2Config, Qwen2ForCausalLM


@dataclasses.dataclass(frozen=True)
class GenerateConfig:
    """``stop_token_ids``: ids that end a row (e.g. EOS, the ``###`` token). ``stop_sequences``: id tuples that
    end a row when the last generated tokens equal one (see ``stopping.stop_sequences_for_strings``).
    ``cache_dtype``: KV cache dtype (default: the model's compute dtype)."""

    max_new_tokens: int = 32
    sampling: SamplingConfig = SamplingConfig(greedy=True)
    stop_token_ids: tuple[int, ...] = ()
    stop_sequences: tuple[tuple[int, ...], ...] = ()
    pad_id: int = 0
    cache_dtype: str | None = None

    def validate(self) -> None:
        if self.max_new_tokens <= 0:
            raise ValueError(f"GenerateConfig.max_new_tokens must be > 0, got {self.max_new_tokens}")
        if any(len(s) == 0 for s in self.stop_sequences):
            raise ValueError("GenerateConfig.stop_sequences must not contain an empty sequence")
        self.sampling.validate()


@struct.dataclass
class GenerateOutput:
    tokens: jax.Array   # [B, max_new_tokens] int32
    lengths: jax.Array  # [B] int32


def pad_prompts(prompts: Sequence[Sequence[int]], pad_id: int = 0, length: int | None = None):
    """Right-pad token lists -> ``(ids [B, T] int32, lengths [B] int32)`` numpy arrays."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("pad_prompts: every prompt needs at least one token")
    t = length or max(len(p) for p in prompts)
    if max(len(p) for p in prompts) > t:
        raise ValueError(f"pad_prompts: a prompt of {max(len(p) for p in prompts)} tokens exceeds length {t}")
    ids = np.full((len(prompts), t), pad_id, np.int32)
    for i, p in enumerate(prompts):
        ids[i, :len(p)] = p
    return ids, np.asarray([len(p) for p in prompts], np.int32)


def _variables(params):
    return params if isinstance(params, dict) and set(params) == {"params"} else {"params": params}


def _stopped_by_sequence(buf: jax.Array, step: jax.Array, seqs: tuple[tuple[int, ...], ...]) -> jax.Array:
    """``buf [B, W + N]`` (W = longest sequence, first W columns -1): does a sequence end at column W+step?"""
    w = max(len(s) for s in seqs)
    hit = jnp.zeros((buf.shape[0],), bool)
    for s in seqs:
        n = len(s)
        window = jax.lax.dynamic_slice_in_dim(buf, w + step - n + 1, n, axis=1)
        hit = hit | jnp.all(window == jnp.asarray(s, jnp.int32)[None, :], axis=1)
    return hit


def _decode(model: Qwen2ForCausalLM, variables, prefill_kwargs: dict, lengths: jax.Array, rng: jax.Array,
            gen: GenerateConfig) -> GenerateOutput:
    c = model.config
    b, t = prefill_kwargs.get("input_ids", prefill_kwargs.get("inputs_embeds")).shape[:2]
    n_new = gen.max_new_tokens
    valid = jnp.arange(t)[None, :] < lengths[:, None]
    cache = model.init_cache(b, t + n_new, dtype=jnp.dtype(gen.cache_dtype) if gen.cache_dtype else None)
    logits, cache = model.apply(variables, **prefill_kwargs, segment_ids=valid.astype(jnp.int32), cache=cache)
    last = jnp.take_along_axis(logits, (lengths - 1)[:, None, None], axis=1)[:, 0]  # [B, V]

    w = max((len(s) for s in gen.stop_sequences), default=0)
    buf = jnp.full((b, w + n_new), -1, jnp.int32)
    stop_ids = jnp.asarray(gen.stop_token_ids or (-1,), jnp.int32)

    def cond(state):
        step, _, _, done, _, _ = state
        return (step < n_new) & ~jnp.all(done)

    def body(state):
        step, last, buf, done, out_len, cache = state
        tok = sample_logits(jax.random.fold_in(rng, step), last, gen.sampling)
        tok = jnp.where(done, gen.pad_id, tok)
        buf = jax.lax.dynamic_update_slice_in_dim(buf, tok[:, None], w + step, axis=1)
        out_len = out_len + (~done).astype(jnp.int32)
        stop = jnp.any(tok[:, None] == stop_ids[None, :], axis=1)
        if gen.stop_sequences:
            stop = stop | _stopped_by_sequence(buf, step, gen.stop_sequences)
        new_done = done | stop
        # Feed the token to get the next logits; finished rows write an invalid (masked) slot.
        logits, cache = model.apply(variables, tok[:, None], segment_ids=(~done)[:, None].astype(jnp.int32),
                                    cache=cache)
        return step + 1, logits[:, 0], buf, new_done, out_len, cache

    state = (jnp.zeros((), jnp.int32), last, buf, jnp.zeros((b,), bool), jnp.zeros((b,), jnp.int32), cache)
    _, _, buf, _, out_len, _ = jax.lax.while_loop(cond, body, state)
    tokens = buf[:, w:]
    # Steps the loop never ran (all rows done early) still hold -1: show them as padding.
    tokens = jnp.where(jnp.arange(n_new)[None, :] < out_len[:, None], tokens, gen.pad_id)
    return GenerateOutput(tokens=tokens, lengths=out_len)


@functools.partial(jax.jit, static_argnames=("model_config", "gen_config"))
def generate(params, prompt_ids: jax.Array, lengths: jax.Array, rng: jax.Array, *, model_config: Qwen2Config,
             gen_config: GenerateConfig) -> GenerateOutput:
    """Generate from right-padded token prompts ``prompt_ids [B, T]`` with ``lengths [B]`` (each >= 1).

    ``params``: the model's param tree (or ``{"params": tree}``). Returns ``GenerateOutput``.
    """
    gen_config.validate()
    model = Qwen2ForCausalLM(model_config)
    return _decode(model, _variables(params), {"input_ids": prompt_ids.astype(jnp.int32)},
                   lengths.astype(jnp.int32), rng, gen_config)


@functools.partial(jax.jit, static_argnames=("model_config", "gen_config"))
def generate_from_embeds(params, inputs_embeds: jax.Array, lengths: jax.Array, rng: jax.Array, *,
                         model_config: Qwen2Config, gen_config: GenerateConfig) -> GenerateOutput:
    """Generate from right-padded prompt embeddings ``inputs_embeds [B, T, D]`` with ``lengths [B]``."""
    gen_config.validate()
    model = Qwen2ForCausalLM(model_config)
    return _decode(model, _variables(params), {"inputs_embeds": inputs_embeds}, lengths.astype(jnp.int32), rng,
                   gen_config)
