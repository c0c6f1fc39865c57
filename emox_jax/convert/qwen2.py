"""Qwen2 / Qwen2.5 weights: HF ``save_pretrained`` directory <-> our param tree, and our on-disk JAX format.

HF -> ours (``load_hf``): safetensors (single or sharded with an index) or ``pytorch_model.bin``; tied or untied
embeddings (when tied, either ``model.embed_tokens.weight`` or ``lm_head.weight`` is accepted); ``rope_theta``
at top level or under ``rope_parameters``. Result: the scanned layout (layers stacked on axis 0), numpy fp32 or
the checkpoint's dtype cast to ``config.param_dtype``.

Ours -> HF (``save_hf``): LoRA merged first, then ``config.json`` + ``model.safetensors`` (tied models store
only ``model.embed_tokens.weight``, as ``save_pretrained`` does) that ``Qwen2ForCausalLM.from_pretrained`` loads.

Our own format (``save_jax``/``load_jax``, written by ``launch.convert --direction to-jax``): a directory with
``config.json`` (our ``Qwen2Config`` fields) and ``params/`` (an Orbax ``StandardCheckpointer`` checkpoint of the
plain param tree), i.e. the same library the trainer's checkpoints use.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import jax
import numpy as np

from emox_jax.convert.io import check_all_used, load_hf_config, load_state_dict, stack_layers, take
from emox_jax.models.qwen2 import Qwen2Config, stack_layer_params, unstack_layer_params

_ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")
_MLP = ("gate_proj", "up_proj", "down_proj")


def _np_dtype(name: str):
    if name == "bfloat16":
        import ml_dtypes

        return ml_dtypes.bfloat16
    return np.dtype(name)


def params_from_hf_state_dict(sd: dict[str, np.ndarray], config: Qwen2Config, *,
                              where: str = "checkpoint") -> dict:
    """HF ``Qwen2ForCausalLM`` state dict -> our param tree (scanned, or unscanned if ``config.scan_layers``
    is False). Raises ``TensorMismatchError`` naming any missing/misshapen tensor and both shapes, and on
    leftover tensors the model does not use."""
    c = config
    d, n, k, h, f, v, L = (c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim, c.intermediate_size,
                           c.vocab_size, c.num_layers)
    used: set[str] = set()
    pre = "model.layers.{}."

    def stack(name, shape, transform=None):
        return stack_layers(sd, pre + name, L, shape, where=where, used=used, transform=transform)

    attn = {
        "q_proj": {"kernel": stack("self_attn.q_proj.weight", (n * h, d), lambda w: w.T.reshape(d, n, h))},
        "k_proj": {"kernel": stack("self_attn.k_proj.weight", (k * h, d), lambda w: w.T.reshape(d, k, h))},
        "v_proj": {"kernel": stack("self_attn.v_proj.weight", (k * h, d), lambda w: w.T.reshape(d, k, h))},
        "o_proj": {"kernel": stack("self_attn.o_proj.weight", (d, n * h), lambda w: w.T.reshape(n, h, d))},
    }
    if c.qkv_bias:
        attn["q_proj"]["bias"] = stack("self_attn.q_proj.bias", (n * h,), lambda b: b.reshape(n, h))
        attn["k_proj"]["bias"] = stack("self_attn.k_proj.bias", (k * h,), lambda b: b.reshape(k, h))
        attn["v_proj"]["bias"] = stack("self_attn.v_proj.bias", (k * h,), lambda b: b.reshape(k, h))
    layers = {
        "input_layernorm": {"scale": stack("input_layernorm.weight", (d,))},
        "post_attention_layernorm": {"scale": stack("post_attention_layernorm.weight", (d,))},
        "self_attn": attn,
        "mlp": {"gate_proj": {"kernel": stack("mlp.gate_proj.weight", (f, d), np.transpose)},
                "up_proj": {"kernel": stack("mlp.up_proj.weight", (f, d), np.transpose)},
                "down_proj": {"kernel": stack("mlp.down_proj.weight", (d, f), np.transpose)}},
    }
    params = {"layers": layers, "norm": {"scale": take(sd, "model.norm.weight", (d,), where=where, used=used)}}
    if c.tie_word_embeddings:
        # save_pretrained keeps embed_tokens, safetensors.save_model keeps lm_head: accept either (or both).
        name = "model.embed_tokens.weight" if "model.embed_tokens.weight" in sd or "lm_head.weight" not in sd \
            else "lm_head.weight"
        params["embed_tokens"] = {"embedding": take(sd, name, (v, d), where=where, used=used)}
        if "lm_head.weight" in sd:
            take(sd, "lm_head.weight", (v, d), where=where, used=used)
    else:
        params["embed_tokens"] = {"embedding": take(sd, "model.embed_tokens.weight", (v, d), where=where,
                                                    used=used)}
        params["lm_head"] = {"kernel": take(sd, "lm_head.weight", (v, d), where=where, used=used).T}
    check_all_used(sd, used, ignore_regexes=(r"rotary_emb\.inv_freq$",), where=where)
    dtype = _np_dtype(c.param_dtype)
    params = _tree_map(lambda a: np.ascontiguousarray(np.asarray(a, np.float32).astype(dtype)), params)
    return params if c.scan_layers else unstack_layer_params(params)


def _tree_map(fn, tree):
    if isinstance(tree, dict):
        return {key: _tree_map(fn, val) for key, val in tree.items()}
    return fn(tree)


def _plain(params) -> dict:
    """Unbox logical-partitioning metadata and bring arrays to host numpy."""
    from flax import linen as nn

    params = nn.meta.unbox(params)
    params = params.get("params", params) if isinstance(params, dict) and set(params) == {"params"} else params
    return jax.tree.map(lambda a: np.asarray(a), dict(params))


def hf_state_dict_from_params(params, config: Qwen2Config, dtype: str = "float32") -> dict[str, np.ndarray]:
    """Our param tree (scanned or unscanned, LoRA or not, boxed or plain) -> HF state dict (numpy ``dtype``).

    LoRA factors are merged into their kernels first (``merge_lora``).
    """
    from emox_jax.layers.lora import merge_lora

    c = config
    if not c.qkv_bias:
        raise ValueError("HF Qwen2 always has q/k/v biases; cannot export a model with qkv_bias=False")
    p = _plain(params)
    if "layers" not in p:
        p = stack_layer_params(p, c.num_layers)
    has_lora = any("lora_" in "/".join(str(getattr(k, "key", k)) for k in path)
                   for path, _ in jax.tree_util.tree_flatten_with_path(p)[0])
    if has_lora:
        if c.lora_rank <= 0:
            raise ValueError("params hold lora_a/lora_b factors but config.lora_rank is 0: cannot merge them")
        p = merge_lora(p, c)
    out_dtype = _np_dtype(dtype)
    d, L = c.hidden_size, c.num_layers
    lay = p["layers"]
    sd: dict[str, np.ndarray] = {}

    def put(name, arr):
        sd[name] = np.ascontiguousarray(np.asarray(arr, np.float32).astype(out_dtype))

    for i in range(L):
        pre = f"model.layers.{i}."
        a = lay["self_attn"]
        for proj in ("q_proj", "k_proj", "v_proj"):
            kern = a[proj]["kernel"][i]  # [D, heads, H]
            put(pre + f"self_attn.{proj}.weight", kern.reshape(d, -1).T)
            put(pre + f"self_attn.{proj}.bias", a[proj]["bias"][i].reshape(-1))
        put(pre + "self_attn.o_proj.weight", a["o_proj"]["kernel"][i].reshape(-1, d).T)
        for proj in _MLP:
            put(pre + f"mlp.{proj}.weight", lay["mlp"][proj]["kernel"][i].T)
        put(pre + "input_layernorm.weight", lay["input_layernorm"]["scale"][i])
        put(pre + "post_attention_layernorm.weight", lay["post_attention_layernorm"]["scale"][i])
    put("model.norm.weight", p["norm"]["scale"])
    put("model.embed_tokens.weight", p["embed_tokens"]["embedding"])
    if not c.tie_word_embeddings:
        put("lm_head.weight", p["lm_head"]["kernel"].T)
    return sd


def config_to_hf(config: Qwen2Config, dtype: str = "float32") -> dict:
    """Our config -> a transformers ``Qwen2Config`` dict (rope_theta written both ways for old and new readers)."""
    c = config
    return {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size, "intermediate_size": c.intermediate_size,
        "num_hidden_layers": c.num_layers, "num_attention_heads": c.num_heads,
        "num_key_value_heads": c.num_kv_heads, "head_dim": c.head_dim, "hidden_act": "silu",
        "max_position_embeddings": c.max_position_embeddings, "rms_norm_eps": c.rms_norm_eps,
        "rope_theta": c.rope_theta, "rope_parameters": {"rope_type": "default", "rope_theta": c.rope_theta},
        "tie_word_embeddings": c.tie_word_embeddings, "use_sliding_window": False, "attention_dropout": 0.0,
        "use_cache": True, "torch_dtype": dtype, "dtype": dtype,
    }


def load_hf(path: str | os.PathLike, **config_overrides) -> tuple[Qwen2Config, dict]:
    """Read a Qwen2 ``save_pretrained`` directory -> ``(Qwen2Config, params)`` (numpy, scanned layout unless
    ``scan_layers=False`` is among the overrides)."""
    config = Qwen2Config.from_hf(load_hf_config(path), **config_overrides)
    sd = load_state_dict(path)
    return config, params_from_hf_state_dict(sd, config, where=str(path))


def save_hf(params, config: Qwen2Config, path: str | os.PathLike, dtype: str = "float32") -> Path:
    """Write ``config.json`` + ``model.safetensors`` (LoRA merged) that transformers loads. Returns the dir."""
    from safetensors.numpy import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    sd = hf_state_dict_from_params(params, config, dtype)
    save_file(sd, str(path / "model.safetensors"), metadata={"format": "pt"})
    (path / "config.json").write_text(json.dumps(config_to_hf(config, dtype), indent=2))
    return path


def save_jax(path: str | os.PathLike, params, config: Qwen2Config) -> Path:
    """Our format: ``path/config.json`` (Qwen2Config fields) + ``path/params`` (Orbax StandardCheckpointer)."""
    import orbax.checkpoint as ocp

    path = Path(path).absolute()
    path.mkdir(parents=True, exist_ok=True)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(path / "params", _plain(params), force=True)
        ckptr.wait_until_finished()
    (path / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
    return path


def load_jax(path: str | os.PathLike) -> tuple[Qwen2Config, dict]:
    """Inverse of ``save_jax`` -> ``(Qwen2Config, params)`` (arrays restored on the default device)."""
    import orbax.checkpoint as ocp

    from emox_jax.config_utils import from_config

    path = Path(path).absolute()
    if not (path / "config.json").exists() or not (path / "params").exists():
        raise FileNotFoundError(f"{path}: expected config.json and params/ (written by launch.convert to-jax)")
    config = from_config(Qwen2Config, json.loads((path / "config.json").read_text()), where=f"{path}/config.json")
    with ocp.StandardCheckpointer() as ckptr:
        params = ckptr.restore(path / "params")
    return config, params


def convert_cli(args) -> dict:
    """``launch.convert --kind qwen2``: ``to-jax`` (HF dir -> our dir) or ``to-hf`` (our dir -> HF dir)."""
    if args.direction == "to-jax":
        config, params = load_hf(args.src)
        if getattr(args, "dtype", None):
            config = config.replace(param_dtype=args.dtype)
            params = _tree_map(lambda a: a.astype(_np_dtype(args.dtype)), params)
        out = save_jax(args.dst, params, config)
    elif args.direction == "to-hf":
        config, params = load_jax(args.src)
        out = save_hf(params, config, args.dst, dtype=getattr(args, "dtype", None) or "float32")
    else:
        raise ValueError(f"unknown --direction {args.direction!r} (to-jax or to-hf)")
    n = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(params))
    return {"kind": "qwen2", "direction": args.direction, "dst": str(out), "num_params": n}
