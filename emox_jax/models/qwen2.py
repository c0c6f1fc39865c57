"""Qwen2 / Qwen2.5 decoder-only LM (the Nano-EmoX language model), with LoRA and an explicit KV cache.

Param tree (HF names, so conversion is a rename + transpose; scanned layout stacks layers on axis 0):
``embed_tokens/embedding [V, D]``; ``layers/{input_layernorm, post_attention_layernorm}/scale [L, D]``;
``layers/self_attn/q_proj/{kernel [L, D, N, H], bias [L, N, H]}``, ``k_proj``/``v_proj`` ``[L, D, K, H]``,
``o_proj/kernel [L, N, H, D]``; ``layers/mlp/{gate,up}_proj/kernel [L, D, F]``, ``down_proj/kernel [L, F, D]``;
``norm/scale [D]``; ``lm_head/kernel [D, V]`` only when embeddings are untied. With ``scan_layers=False`` the
layers are ``layers_0 .. layers_{L-1}`` without the leading axis (`stack_layer_params` converts).
LoRA adds ``lora_a``/``lora_b`` beside each targeted kernel (see ``emox_jax.layers.lora``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from emox_jax.infer.kv_cache import KVCache, init_cache, write_layer
from emox_jax.layers.attention import choose_implementation, dot_product_attention, make_attention_mask
from emox_jax.layers.embed import Embedder, Unembed
from emox_jax.layers.lora import LoRADenseGeneral
from emox_jax.layers.mlp import SwiGLUMLP
from emox_jax.layers.norms import RMSNorm
from emox_jax.layers.rope import apply_rope, rope_cos_sin
from emox_jax.layers.scan import REMAT_POLICIES, scan_stack

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


@dataclasses.dataclass(frozen=True)
class Qwen2Config:
    """Shapes and options of a Qwen2 decoder. ``dtype`` = compute dtype, ``param_dtype`` = storage dtype."""

    vocab_size: int = 151936
    hidden_size: int = 1536
    num_layers: int = 28
    num_heads: int = 12
    num_kv_heads: int = 2
    head_dim: int = 128
    intermediate_size: int = 8960
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1_000_000.0
    tie_word_embeddings: bool = True
    qkv_bias: bool = True
    max_position_embeddings: int = 32768
    dtype: str = "float32"
    param_dtype: str = "float32"
    remat_policy: str = "none"
    scan_layers: bool = True
    lora_rank: int = 0
    lora_alpha: float = 32.0
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = LORA_TARGETS
    attention_impl: str | None = None

    def validate(self) -> None:
        from emox_jax.config_utils import ConfigError

        def need(ok, msg):
            if not ok:
                raise ConfigError(f"Qwen2Config: {msg}")

        for f in ("vocab_size", "hidden_size", "num_layers", "num_heads", "num_kv_heads", "head_dim",
                  "intermediate_size", "max_position_embeddings"):
            need(getattr(self, f) > 0, f"{f} must be > 0, got {getattr(self, f)}")
        need(self.num_heads % self.num_kv_heads == 0,
             f"num_heads ({self.num_heads}) must be divisible by num_kv_heads ({self.num_kv_heads})")
        need(self.head_dim % 2 == 0, f"head_dim must be even for RoPE, got {self.head_dim}")
        need(self.dtype in _DTYPES, f"dtype {self.dtype!r} not in {sorted(_DTYPES)}")
        need(self.param_dtype in _DTYPES, f"param_dtype {self.param_dtype!r} not in {sorted(_DTYPES)}")
        need(self.remat_policy in REMAT_POLICIES, f"remat_policy {self.remat_policy!r} not in {sorted(REMAT_POLICIES)}")
        need(self.lora_rank >= 0, f"lora_rank must be >= 0, got {self.lora_rank}")
        need(0.0 <= self.lora_dropout < 1.0, f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        bad = [t for t in self.lora_targets if t not in LORA_TARGETS]
        need(not bad, f"unknown lora_targets {bad}; valid: {LORA_TARGETS}")
        need(self.rope_theta > 0, f"rope_theta must be > 0, got {self.rope_theta}")
        need(self.attention_impl in (None, "einsum", "xla", "cudnn"), f"attention_impl {self.attention_impl!r} "
             "not in (None, 'einsum', 'xla', 'cudnn')")

    @property
    def compute_dtype(self):
        return _DTYPES[self.dtype]

    @property
    def storage_dtype(self):
        return _DTYPES[self.param_dtype]

    def replace(self, **kw) -> "Qwen2Config":
        return dataclasses.replace(self, **kw)

    @classmethod
    def qwen2_5_1_5b(cls, **overrides) -> "Qwen2Config":
        """Qwen2.5-1.5B(-Instruct): 1,543,714,304 params (tied embeddings)."""
        cfg = cls(vocab_size=151936, hidden_size=1536, num_layers=28, num_heads=12, num_kv_heads=2, head_dim=128,
                  intermediate_size=8960, rms_norm_eps=1e-6, rope_theta=1_000_000.0, tie_word_embeddings=True,
                  qkv_bias=True, max_position_embeddings=32768)
        cfg = dataclasses.replace(cfg, **overrides)
        cfg.validate()
        return cfg

    @classmethod
    def tiny(cls, **overrides) -> "Qwen2Config":
        """A 3.4M-param decoder for CPU tests and the quickstart (vocab 1024 fits the tiny sentencepiece)."""
        cfg = cls(vocab_size=1024, hidden_size=256, num_layers=4, num_heads=4, num_kv_heads=2, head_dim=64,
                  intermediate_size=768, rms_norm_eps=1e-6, rope_theta=10_000.0, tie_word_embeddings=True,
                  qkv_bias=True, max_position_embeddings=2048)
        cfg = dataclasses.replace(cfg, **overrides)
        cfg.validate()
        return cfg

    @classmethod
    def from_hf(cls, hf: dict, **overrides) -> "Qwen2Config":
        """From a transformers ``config.json`` dict (``rope_theta`` top level or under ``rope_parameters``)."""
        from emox_jax.config_utils import ConfigError

        def get(key, default=dataclasses.MISSING):
            if key in hf and hf[key] is not None:
                return hf[key]
            if default is dataclasses.MISSING:
                raise ConfigError(f"HF Qwen2 config: missing key {key!r} (have {sorted(hf)})")
            return default

        if hf.get("model_type") not in (None, "qwen2"):
            raise ConfigError(f"HF config model_type is {hf.get('model_type')!r}, expected 'qwen2'")
        theta = hf.get("rope_theta")
        rp = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
        if theta is None:
            theta = rp.get("rope_theta")
        if theta is None:
            raise ConfigError("HF Qwen2 config: no rope_theta at top level or under rope_parameters")
        rope_type = rp.get("rope_type", rp.get("type", "default"))
        if rope_type not in (None, "default"):
            raise ConfigError(f"HF Qwen2 config: rope type {rope_type!r} is not supported (only 'default')")
        heads = get("num_attention_heads")
        hidden = get("hidden_size")
        kw = dict(vocab_size=get("vocab_size"), hidden_size=hidden, num_layers=get("num_hidden_layers"),
                  num_heads=heads, num_kv_heads=get("num_key_value_heads", heads),
                  head_dim=get("head_dim", hidden // heads), intermediate_size=get("intermediate_size"),
                  rms_norm_eps=float(get("rms_norm_eps", 1e-6)), rope_theta=float(theta),
                  tie_word_embeddings=bool(get("tie_word_embeddings", False)), qkv_bias=True,
                  max_position_embeddings=get("max_position_embeddings", 32768))
        kw.update(overrides)
        cfg = cls(**kw)
        cfg.validate()
        return cfg


class Qwen2Attention(nn.Module):
    """GQA self-attention with q/k/v bias and RoPE. ``x [B, T, D] -> ([B, T, D], (k, v) [B, S, K, H] or None)``."""

    config: Qwen2Config

    def _proj(self, name, features, axes, n_in=1, bias=True):
        c = self.config
        rank = c.lora_rank if name in c.lora_targets else 0
        return LoRADenseGeneral(features, axes, n_in=n_in, use_bias=bias, rank=rank, alpha=c.lora_alpha,
                                dropout=c.lora_dropout, dtype=c.compute_dtype, param_dtype=c.storage_dtype,
                                name=name)

    @nn.compact
    def __call__(self, x, cos, sin, mask, cache_end=None, cache_kv=None, deterministic=True):
        c = self.config
        det = deterministic
        q = self._proj("q_proj", (c.num_heads, c.head_dim), ("embed", "heads", "head_dim"), bias=c.qkv_bias)(x, det)
        k = self._proj("k_proj", (c.num_kv_heads, c.head_dim), ("embed", "kv_heads", "head_dim"),
                       bias=c.qkv_bias)(x, det)
        v = self._proj("v_proj", (c.num_kv_heads, c.head_dim), ("embed", "kv_heads", "head_dim"),
                       bias=c.qkv_bias)(x, det)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        new_kv = None
        if cache_kv is not None:
            # Attend over the whole (updated) cache; the mask hides unwritten and padding slots.
            k, v = new_kv = write_layer(cache_kv[0], cache_kv[1], k, v, cache_end)
            k, v = k.astype(q.dtype), v.astype(q.dtype)
        impl = c.attention_impl
        if cache_kv is not None and impl is None:
            # Cached calls (prefill into / decode from a KV cache) use no fused kernel unless one is named:
            # decoding is memory-bound (T = 1), so a flash kernel buys nothing there, and cuDNN's shape limits
            # do not apply.
            impl = choose_implementation(q.dtype, c.head_dim, kernels=False)
        out = dot_product_attention(q, k, v, mask=mask, implementation=impl)
        out = self._proj("o_proj", c.hidden_size, ("heads", "head_dim", "embed"), n_in=2, bias=False)(out, det)
        return out, new_kv


class Qwen2DecoderLayer(nn.Module):
    """Pre-norm block ``x + attn(norm(x))``, then ``+ mlp(norm(x))``; scan-compatible ``(carry, y)`` signature.

    ``x [B, T, D]`` is the carry; ``y`` is this layer's updated ``(k, v)`` cache slice (None without a cache).
    """

    config: Qwen2Config

    @nn.compact
    def __call__(self, x, cos, sin, mask, cache_end=None, cache_kv=None, deterministic=True):
        c = self.config
        norm = dict(eps=c.rms_norm_eps, dtype=c.compute_dtype, param_dtype=c.storage_dtype)
        h = RMSNorm(name="input_layernorm", **norm)(x)
        h, new_kv = Qwen2Attention(c, name="self_attn")(h, cos, sin, mask, cache_end, cache_kv,
                                                         deterministic)
        x = nn.with_logical_constraint(x + h, ("batch", "length", "act_embed"))
        h = RMSNorm(name="post_attention_layernorm", **norm)(x)
        h = SwiGLUMLP(c.intermediate_size, dtype=c.compute_dtype, param_dtype=c.storage_dtype,
                      lora_rank=c.lora_rank, lora_alpha=c.lora_alpha, lora_dropout=c.lora_dropout,
                      lora_targets=tuple(t for t in c.lora_targets if t.endswith("_proj")),
                      name="mlp")(h, deterministic)
        x = nn.with_logical_constraint(x + h, ("batch", "length", "act_embed"))
        return x, new_kv


def segment_positions(segment_ids: jax.Array) -> jax.Array:
    """``[B, T]`` segment ids -> positions that restart at 0 at every segment change (packing)."""
    t = jnp.arange(segment_ids.shape[1])[None, :]
    is_start = jnp.concatenate([jnp.ones_like(segment_ids[:, :1], bool),
                                segment_ids[:, 1:] != segment_ids[:, :-1]], axis=1)
    start = jax.lax.cummax(jnp.where(is_start, t, 0), axis=1)
    return (t - start).astype(jnp.int32)


class Qwen2ForCausalLM(nn.Module):
    """Qwen2 decoder with LM head.

    ``__call__(input_ids [B, T] | inputs_embeds [B, T, D], positions [B, T]?, segment_ids [B, T]?, cache?)``
    returns fp32 logits ``[B, T, V]``, or ``(logits, new_cache)`` when a ``KVCache`` is passed.

    - ``segment_ids``: packing ids; 0 marks padding (attends nowhere, attended by nothing). Without a cache the
      mask is causal-by-index & same-segment; default positions restart at each segment change (so a
      left-padded row's first real token gets position 0), or ``arange(T)`` without segment ids.
    - With a cache the T tokens are written at slots ``cache.end..cache.end+T-1``; ``segment_ids != 0`` marks
      which of them are real (the rest become invalid slots); default positions continue each row's count of
      valid tokens. Packing (several segments per row) is not supported together with a cache.
    """

    config: Qwen2Config

    def setup(self):
        c = self.config
        self.embed_tokens = Embedder(c.vocab_size, c.hidden_size, dtype=c.compute_dtype,
                                     param_dtype=c.storage_dtype)
        if c.scan_layers:
            # (cos, sin, mask, cache_end, deterministic) are shared by every layer; the cache (k, v) is sliced
            # per layer. `deterministic` is a Python bool: static for remat (flax counts `self` as arg 0).
            self.layers = scan_stack(Qwen2DecoderLayer, length=c.num_layers, remat=c.remat_policy,
                                     in_axes=(nn.broadcast, nn.broadcast, nn.broadcast, nn.broadcast, 0,
                                              nn.broadcast), static_argnums=(7,))(c, name="layers")
        else:
            self.layers = [Qwen2DecoderLayer(c, name=f"layers_{i}") for i in range(c.num_layers)]
        self.norm = RMSNorm(c.rms_norm_eps, dtype=c.compute_dtype, param_dtype=c.storage_dtype)
        if not c.tie_word_embeddings:
            self.lm_head = Unembed(c.vocab_size, dtype=c.compute_dtype, param_dtype=c.storage_dtype)

    def embed(self, input_ids: jax.Array) -> jax.Array:
        """``[B, T]`` ids -> ``[B, T, D]`` input embeddings (compute dtype), for splicing modality tokens."""
        return self.embed_tokens(input_ids)

    def __call__(self, input_ids: jax.Array | None = None, *, inputs_embeds: jax.Array | None = None,
                 positions: jax.Array | None = None, segment_ids: jax.Array | None = None,
                 cache: KVCache | None = None, deterministic: bool = True):
        c = self.config
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Qwen2ForCausalLM: pass exactly one of input_ids [B, T] or inputs_embeds [B, T, D]")
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds.astype(c.compute_dtype)
        if x.ndim != 3 or x.shape[-1] != c.hidden_size:
            raise ValueError(f"Qwen2ForCausalLM: embeddings must be [B, T, {c.hidden_size}], got {x.shape}")
        b, t = x.shape[:2]
        x = nn.with_logical_constraint(x, ("batch", "length", "act_embed"))

        cache_end = cache_kv = None
        if cache is None:
            if positions is None:
                positions = (segment_positions(segment_ids) if segment_ids is not None
                             else jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t)))
            mask = make_attention_mask(causal=True, q_len=t, kv_len=t, q_segment_ids=segment_ids,
                                       kv_segment_ids=segment_ids)
        else:
            real = jnp.ones((b, t), bool) if segment_ids is None else segment_ids != 0
            if positions is None:
                positions = cache.next_positions()[:, None] + jnp.cumsum(real, axis=1, dtype=jnp.int32) - 1
                positions = jnp.maximum(positions, 0)
            valid = jax.lax.dynamic_update_slice(cache.valid, real, (0, cache.end))
            slots = cache.end + jnp.arange(t, dtype=jnp.int32)
            mask = make_attention_mask(causal=True, q_positions=slots[None, :],
                                       kv_positions=jnp.arange(cache.max_length, dtype=jnp.int32)[None, :],
                                       kv_valid=valid)
            cache_end, cache_kv = cache.end, (cache.k, cache.v)
        cos, sin = rope_cos_sin(positions, c.head_dim, c.rope_theta)

        if c.scan_layers:
            x, new_kv = self.layers(x, cos, sin, mask, cache_end, cache_kv, deterministic)
        else:
            ys = []
            for i, layer in enumerate(self.layers):
                kv_i = None if cache_kv is None else (cache_kv[0][i], cache_kv[1][i])
                x, y = layer(x, cos, sin, mask, cache_end, kv_i, deterministic)
                ys.append(y)
            new_kv = None if cache_kv is None else (jnp.stack([y[0] for y in ys]), jnp.stack([y[1] for y in ys]))
        x = self.norm(x)
        logits = self.embed_tokens.attend(x) if c.tie_word_embeddings else self.lm_head(x)
        logits = nn.with_logical_constraint(logits, ("batch", "length", "act_vocab"))
        if cache is None:
            return logits
        new_cache = cache.replace(k=new_kv[0], v=new_kv[1], valid=valid, end=cache.end + t)
        return logits, new_cache

    def init_cache(self, batch: int, max_length: int, dtype=None) -> KVCache:
        """An empty ``KVCache`` for this config (callable on an unbound module)."""
        c = self.config
        return init_cache(c.num_layers, batch, max_length, c.num_kv_heads, c.head_dim,
                          dtype or c.compute_dtype)


def stack_layer_params(params: dict, num_layers: int) -> dict:
    """Unscanned tree (``layers_0..``) -> scanned tree (``layers`` with a leading layer axis)."""
    out = {k: v for k, v in params.items() if not k.startswith("layers_")}
    out["layers"] = jax.tree.map(lambda *xs: jnp.stack(xs), *[params[f"layers_{i}"] for i in range(num_layers)])
    return out


def unstack_layer_params(params: dict) -> dict:
    """Scanned tree -> unscanned tree (``layers_i``)."""
    out = {k: v for k, v in params.items() if k != "layers"}
    n = jax.tree.leaves(params["layers"])[0].shape[0]
    for i in range(n):
        out[f"layers_{i}"] = jax.tree.map(lambda x: x[i], params["layers"])
    return out


def count_params(tree: Any) -> int:
    return int(sum(x.size for x in jax.tree.leaves(tree)))
