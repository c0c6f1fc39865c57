"""Q-Former weights -> ``QFormer`` params (``emox_jax.models.qformer``), and optional BERT init.

Naming schemes (``scheme=``):
- ``"lavis"``: the reference's / LAVIS ``BertLMHeadModel`` (``{prefix}bert.embeddings.LayerNorm``,
  ``bert.encoder.layer.{i}.attention.self.query``, ``.attention.output.dense|LayerNorm``, ``.crossattention.*``,
  ``.intermediate_query.dense``, ``.output_query.dense|LayerNorm``), e.g. ``video_Qformer.`` in a Nano-EmoX
  checkpoint; query tokens / position table are separate tensors (``query_key``, ``pos_key``).
- ``"hf_blip2"``: transformers ``Blip2QFormerModel`` (``layernorm``, ``encoder.layer.{i}.attention.attention.query``,
  ``.attention.output.*``, ``.crossattention.attention.*``, ``.intermediate_query``, ``.output_query``).
The text-branch FFN (``intermediate``/``output``) that HF keeps is ignored; a model with cross-attention only
every k-th layer (``cross_attention_frequency > 1``) is refused by name (not representable in our scan).

BERT init (``init_from_bert``): what BLIP-2 does at pre-training start. From a BERT directory
(``bert.embeddings.LayerNorm``, ``bert.encoder.layer.{i}.attention.*``, ``.intermediate``, ``.output``) the
*mappable* parts are copied - embedding LayerNorm, self-attention (+ output dense/LN), query FFN <- BERT FFN
(``intermediate`` -> ``ffn_in``, ``output`` -> ``ffn_out``/``ffn_norm``) - and the *new* parts keep their init:
query tokens, position table, cross-attention (K/V are ``encoder_width -> hidden``; BERT has none). The
reference does NOT do this (its Q-Formers are randomly initialised, §2.3); it is an option.

CLI: ``python -m launch.convert --kind qformer --hf-dir DIR --output DIR`` converts a ``Blip2QFormerModel``
save_pretrained directory (its config.json gives the sizes).
"""

from __future__ import annotations

import numpy as np

from emox_jax.convert.io import (CheckpointFormatError, check_all_used, load_hf_config, load_state_dict,
                                 stack_layers, take)
from emox_jax.models.qformer import QFormerConfig

SCHEMES = {
    "lavis": dict(emb_ln="bert.embeddings.LayerNorm", layer="bert.encoder.layer.{}.", self_attn="attention.self.",
                  self_out="attention.output.", cross_attn="crossattention.self.", cross_out="crossattention.output."),
    "hf_blip2": dict(emb_ln="layernorm", layer="encoder.layer.{}.", self_attn="attention.attention.",
                     self_out="attention.output.", cross_attn="crossattention.attention.",
                     cross_out="crossattention.output."),
}


def _ln_names(sd, base: str) -> tuple[str, str]:
    """LayerNorm weight/bias names (old BERT checkpoints use gamma/beta)."""
    return (base + ".gamma", base + ".beta") if base + ".gamma" in sd else (base + ".weight", base + ".bias")


def _attn(sd, base_in: str, base_out: str, cfg: QFormerConfig, kv_width: int, n: int, used, where) -> dict:
    h, nh = cfg.hidden_size, cfg.num_heads
    hd = h // nh

    def w_in(name, width):
        return stack_layers(sd, base_in + name + ".weight", n, (h, width), where=where, used=used,
                            transform=lambda w: w.T.reshape(width, nh, hd))

    def b_in(name):
        return stack_layers(sd, base_in + name + ".bias", n, (h,), where=where, used=used,
                            transform=lambda b: b.reshape(nh, hd))

    return {
        "query": {"kernel": w_in("query", h), "bias": b_in("query")},
        "key": {"kernel": w_in("key", kv_width), "bias": b_in("key")},
        "value": {"kernel": w_in("value", kv_width), "bias": b_in("value")},
        "out": {"kernel": stack_layers(sd, base_out + "dense.weight", n, (h, h), where=where, used=used,
                                       transform=lambda w: w.T.reshape(nh, hd, h)),
                "bias": stack_layers(sd, base_out + "dense.bias", n, (h,), where=where, used=used)},
    }


def _ln(sd, base: str, n: int, h: int, used, where) -> dict:
    w, b = _ln_names(sd, base.format(0))
    suf_w, suf_b = w[len(base.format(0)):], b[len(base.format(0)):]
    return {"scale": stack_layers(sd, base + suf_w, n, (h,), where=where, used=used),
            "bias": stack_layers(sd, base + suf_b, n, (h,), where=where, used=used)}


def _check_layers(sd, prefix: str, scheme: dict, cfg: QFormerConfig, where: str) -> None:
    lay = prefix + scheme["layer"]
    n = 0
    while any(k.startswith(lay.format(n)) for k in sd):
        n += 1
    if n != cfg.num_layers:
        raise CheckpointFormatError(f"{where}: checkpoint has {n} Q-Former layers under {prefix!r} but the model "
                                    f"expects {cfg.num_layers}")
    missing = [i for i in range(n) if not any(k.startswith(lay.format(i) + scheme["cross_attn"]) for k in sd)]
    if missing:
        raise CheckpointFormatError(f"{where}: Q-Former layers {missing} have no cross-attention; this model needs "
                                    "cross-attention in every layer (cross_attention_frequency=1)")


def qformer_params_from_state_dict(sd: dict[str, np.ndarray], cfg: QFormerConfig, *, prefix: str = "",
                                   scheme: str = "lavis", query_key: str | None = None, pos_key: str | None = None,
                                   used: set | None = None, where: str = "checkpoint") -> dict:
    """Tensors under ``prefix`` (+ ``query_key`` ``[1|-, Q, H]`` and ``pos_key`` ``[P, E]``) -> ``QFormer`` params."""
    s = SCHEMES[scheme]
    used = set() if used is None else used
    _check_layers(sd, prefix, s, cfg, where)
    n, h = cfg.num_layers, cfg.hidden_size
    lay = prefix + s["layer"]
    ln_w, ln_b = _ln_names(sd, prefix + s["emb_ln"])
    params = {
        "emb_norm": {"scale": take(sd, ln_w, (h,), where=where, used=used),
                     "bias": take(sd, ln_b, (h,), where=where, used=used)},
        "layers": {
            "self_attn": _attn(sd, lay + s["self_attn"], lay + s["self_out"], cfg, h, n, used, where),
            "self_attn_norm": _ln(sd, lay + s["self_out"] + "LayerNorm", n, h, used, where),
            "cross_attn": _attn(sd, lay + s["cross_attn"], lay + s["cross_out"], cfg, cfg.encoder_width, n, used,
                                where),
            "cross_attn_norm": _ln(sd, lay + s["cross_out"] + "LayerNorm", n, h, used, where),
            "ffn_in": {"kernel": stack_layers(sd, lay + "intermediate_query.dense.weight", n,
                                              (cfg.intermediate_size, h), where=where, used=used, transform=np.transpose),
                       "bias": stack_layers(sd, lay + "intermediate_query.dense.bias", n, (cfg.intermediate_size,),
                                            where=where, used=used)},
            "ffn_out": {"kernel": stack_layers(sd, lay + "output_query.dense.weight", n, (h, cfg.intermediate_size),
                                               where=where, used=used, transform=np.transpose),
                        "bias": stack_layers(sd, lay + "output_query.dense.bias", n, (h,), where=where, used=used)},
            "ffn_norm": _ln(sd, lay + "output_query.LayerNorm", n, h, used, where),
        },
    }
    if query_key is not None:
        q = take(sd, query_key, None, where=where, used=used)
        q = q.reshape(-1, q.shape[-1])
        if q.shape != (cfg.num_queries, h):
            raise CheckpointFormatError(f"{where}: {query_key!r} holds {q.shape} query tokens, expected "
                                        f"({cfg.num_queries}, {h})")
        params["query_tokens"] = q
    if pos_key is not None:
        params["position_embedding"] = take(sd, pos_key, (cfg.num_positions, cfg.encoder_width), where=where,
                                            used=used)
    return params


def config_from_blip2_json(d: dict, **overrides) -> QFormerConfig:
    """A ``Blip2QFormerConfig`` dict (``config.json``) -> ``QFormerConfig`` (no position table, 32 queries)."""
    if d.get("cross_attention_frequency", 1) != 1:
        raise CheckpointFormatError(f"Blip2QFormer cross_attention_frequency={d['cross_attention_frequency']}; "
                                    "this Q-Former needs cross-attention in every layer (frequency 1)")
    if d.get("hidden_act", "gelu") != "gelu":
        raise CheckpointFormatError(f"Blip2QFormer hidden_act={d['hidden_act']!r}; expected 'gelu'")
    kw = dict(num_layers=d["num_hidden_layers"], hidden_size=d["hidden_size"], num_heads=d["num_attention_heads"],
              intermediate_size=d["intermediate_size"], encoder_width=d["encoder_hidden_size"],
              layer_norm_eps=d.get("layer_norm_eps", 1e-12), num_positions=0)
    kw.update(overrides)
    return QFormerConfig(**kw)


HF_BLIP2_IGNORED = (r"\.intermediate\.dense\.", r"\.output\.dense\.", r"\.output\.LayerNorm\.", r"position_ids$")


def init_from_bert(params: dict, bert_sd: dict[str, np.ndarray], cfg: QFormerConfig,
                   where: str = "bert checkpoint") -> tuple[dict, list[str]]:
    """Copy the mappable BERT tensors into (a copy of) ``params``; returns ``(params, new_param_paths)``.

    ``params`` is an existing ``QFormer`` param tree (its cross-attention, queries and positions are kept).
    """
    sd = {k[len("bert."):] if k.startswith("bert.") else k: v for k, v in bert_sd.items()}
    n_bert = 0
    while f"encoder.layer.{n_bert}.attention.self.query.weight" in sd:
        n_bert += 1
    if n_bert < cfg.num_layers:
        raise CheckpointFormatError(f"{where}: BERT has {n_bert} layers, the Q-Former needs {cfg.num_layers}")
    hq = take(sd, "encoder.layer.0.attention.self.query.weight", None, where=where)
    if hq.shape[0] != cfg.hidden_size:
        raise CheckpointFormatError(f"{where}: BERT hidden size {hq.shape[0]} != Q-Former hidden {cfg.hidden_size}")
    used: set[str] = set()
    n, h = cfg.num_layers, cfg.hidden_size
    lay = "encoder.layer.{}."
    ln_w, ln_b = _ln_names(sd, "embeddings.LayerNorm")
    new = dict(params)
    new["emb_norm"] = {"scale": take(sd, ln_w, (h,), where=where, used=used),
                       "bias": take(sd, ln_b, (h,), where=where, used=used)}
    layers = dict(params["layers"])
    layers["self_attn"] = _attn(sd, lay + "attention.self.", lay + "attention.output.", cfg, h, n, used, where)
    layers["self_attn_norm"] = _ln(sd, lay + "attention.output.LayerNorm", n, h, used, where)
    i = cfg.intermediate_size
    layers["ffn_in"] = {"kernel": stack_layers(sd, lay + "intermediate.dense.weight", n, (i, h), where=where,
                                               used=used, transform=np.transpose),
                        "bias": stack_layers(sd, lay + "intermediate.dense.bias", n, (i,), where=where, used=used)}
    layers["ffn_out"] = {"kernel": stack_layers(sd, lay + "output.dense.weight", n, (h, i), where=where, used=used,
                                                transform=np.transpose),
                         "bias": stack_layers(sd, lay + "output.dense.bias", n, (h,), where=where, used=used)}
    layers["ffn_norm"] = _ln(sd, lay + "output.LayerNorm", n, h, used, where)
    new["layers"] = layers
    new_parts = ["query_tokens", "position_embedding", "layers/cross_attn", "layers/cross_attn_norm"]
    return new, new_parts


def convert_cli(args) -> dict:
    """``launch.convert --kind qformer --hf-dir DIR --output OUT``: a Blip2QFormerModel dir -> Orbax params."""
    import orbax.checkpoint as ocp
    from pathlib import Path

    src = getattr(args, "hf_dir", None) or getattr(args, "checkpoint", None)
    out = getattr(args, "output", None) or getattr(args, "out_dir", None)
    if not src or not out:
        raise SystemExit("convert --kind qformer needs --hf-dir DIR (a Blip2QFormerModel save_pretrained dir) "
                         "and --output DIR")
    hf = load_hf_config(src)
    hf = hf.get("qformer_config", hf)
    cfg = config_from_blip2_json(hf)
    sd = load_state_dict(src)
    prefix = "qformer." if any(k.startswith("qformer.") for k in sd) else ""
    qk = "query_tokens" if "query_tokens" in sd else None
    if qk is not None:
        cfg = QFormerConfig(**{**cfg.__dict__, "num_queries": int(np.prod(sd[qk].shape[:-1]))})
    used: set[str] = set()
    params = qformer_params_from_state_dict(sd, cfg, prefix=prefix, scheme="hf_blip2", query_key=qk, used=used,
                                            where=str(src))
    ignore = HF_BLIP2_IGNORED + ((r"^(?!qformer\.|query_tokens)",) if prefix else ())
    check_all_used(sd, used, ignore, where=str(src))
    ckpt = ocp.StandardCheckpointer()
    ckpt.save(Path(out).absolute(), {"params": params}, force=True)
    ckpt.wait_until_finished()
    return {"kind": "qformer", "output": str(out), "config": cfg.__dict__, "has_query_tokens": qk is not None}
