"""Parity of our Qwen2 decoder with transformers' ``Qwen2ForCausalLM`` on one save_pretrained directory."""

from __future__ import annotations

import numpy as np

DEFAULT_TOLERANCE = 1e-4


def run(args) -> dict:
    """Load ``args.hf_dir`` in transformers (fp32, eager attention) and in ours; feed both the same random
    tokens ``[args.batch, args.seq_len]`` (seed ``args.seed``); report the max abs logit difference."""
    import jax
    import jax.numpy as jnp
    import torch
    from transformers import Qwen2ForCausalLM as HFQwen2

    from emox_jax.convert.qwen2 import load_hf
    from emox_jax.models.qwen2 import Qwen2ForCausalLM

    if not args.hf_dir:
        raise SystemExit("check_parity --kind qwen2 needs --hf-dir")
    dtype = getattr(args, "dtype", "float32") or "float32"
    config, params = load_hf(args.hf_dir, dtype=dtype, param_dtype="float32")
    ids = np.random.default_rng(args.seed).integers(0, config.vocab_size, (args.batch, args.seq_len))
    with jax.default_matmul_precision("highest"):
        ours = jax.jit(Qwen2ForCausalLM(config).apply)({"params": params}, jnp.asarray(ids, jnp.int32))
    ours = np.asarray(ours, np.float32)
    torch_dtype = torch.bfloat16 if dtype == "bfloat16" else torch.float32
    hf = HFQwen2.from_pretrained(args.hf_dir, dtype=torch_dtype, attn_implementation="eager").eval()
    with torch.no_grad():
        ref = hf(torch.as_tensor(ids)).logits.float().numpy()
    diff = np.abs(ours - ref)
    tol = DEFAULT_TOLERANCE if dtype == "float32" else 5e-2 * float(np.abs(ref).max())
    return {"kind": "qwen2", "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
            "tolerance": tol, "seq_len": int(args.seq_len), "batch": int(args.batch), "dtype": dtype,
            "max_abs_logit": float(np.abs(ref).max()),
            "num_params": int(sum(a.size for a in jax.tree.leaves(params)))}
