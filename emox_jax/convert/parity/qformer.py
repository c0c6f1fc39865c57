"""``python -m launch.check_parity --kind qformer [--hf-dir DIR]``: our Q-Former vs ``Blip2QFormerModel``.

``--hf-dir``: a ``Blip2QFormerModel`` save_pretrained directory (cross_attention_frequency must be 1);
without it a tiny random model is built in-process. Random query tokens ``[1, 8, H]`` and encoder features
``[batch, seq_len, encoder_hidden_size]``; fp32, tolerance 1e-4 on the last hidden state.
"""

from __future__ import annotations

import numpy as np

DEFAULT_TOLERANCE = 1e-4


def run(args) -> dict:
    import jax
    import jax.numpy as jnp
    import torch
    from transformers import Blip2QFormerConfig, Blip2QFormerModel

    from emox_jax.convert.qformer import config_from_blip2_json, qformer_params_from_state_dict
    from emox_jax.models.qformer import QFormer

    if args.hf_dir:
        hf = Blip2QFormerModel.from_pretrained(args.hf_dir).eval()
        source = f"transformers Blip2QFormerModel {args.hf_dir}"
    else:
        torch.manual_seed(args.seed)
        hf = Blip2QFormerModel(Blip2QFormerConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                                  intermediate_size=64, encoder_hidden_size=24,
                                                  cross_attention_frequency=1, vocab_size=10)).eval()
        source = "tiny random transformers Blip2QFormerModel"
    cfg = config_from_blip2_json(hf.config.to_dict(), num_queries=8)
    rng = np.random.default_rng(args.seed)
    queries = rng.normal(size=(1, cfg.num_queries, cfg.hidden_size)).astype(np.float32)
    feats = rng.normal(size=(args.batch, min(args.seq_len, 256), cfg.encoder_width)).astype(np.float32)
    sd = {k: v.detach().numpy() for k, v in hf.state_dict().items()}
    sd["query_tokens"] = queries
    params = qformer_params_from_state_dict(sd, cfg, scheme="hf_blip2", query_key="query_tokens")
    with torch.no_grad():
        want = hf(query_embeds=torch.from_numpy(queries).expand(args.batch, -1, -1),
                  encoder_hidden_states=torch.from_numpy(feats)).last_hidden_state.numpy()
    with jax.default_matmul_precision("highest"):
        got = jax.jit(QFormer(cfg).apply)({"params": params}, jnp.asarray(feats))
    return {"kind": "qformer", "source": source, "max_abs_diff": float(np.max(np.abs(np.asarray(got) - want))),
            "tolerance": DEFAULT_TOLERANCE}
