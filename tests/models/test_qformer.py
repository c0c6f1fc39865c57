"""Q-Former vs transformers ``Blip2QFormerModel`` (fp32, tiny, cross_attention_frequency=1), masks, sharding.

BLIP-2's query path is exactly the spec's layout (emb LN on the queries, post-LN self-attn, cross-attn every
layer, query FFN), so the HF model is the reference; the frame position table (not part of BLIP-2) is
checked by adding it to HF's encoder input by hand.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import linen as nn

from emox_jax.convert.qformer import qformer_params_from_state_dict
from emox_jax.models.qformer import QFormer, QFormerConfig
from emox_jax.sharding import LOGICAL_AXIS_RULES, logical_to_shardings, make_mesh


def hf_qformer(cfg: QFormerConfig, seed: int = 0):
    from transformers import Blip2QFormerConfig, Blip2QFormerModel

    torch.manual_seed(seed)
    m = Blip2QFormerModel(Blip2QFormerConfig(
        hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size, encoder_hidden_size=cfg.encoder_width, cross_attention_frequency=1,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, vocab_size=10))
    with torch.no_grad():  # non-trivial LayerNorm affine params and biases
        for name, p in m.named_parameters():
            if "LayerNorm" in name or "layernorm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    return m.eval()


def converted(hf, cfg, queries):
    sd = {k: v.detach().numpy() for k, v in hf.state_dict().items()}
    sd["query_tokens"] = queries
    return qformer_params_from_state_dict(sd, cfg, scheme="hf_blip2", query_key="query_tokens")


@pytest.mark.slow
def test_qformer_matches_blip2_qformer_with_positions():
    cfg = QFormerConfig.tiny(num_positions=8)
    hf = hf_qformer(cfg)
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(1, cfg.num_queries, cfg.hidden_size)).astype(np.float32)
    pos = rng.normal(size=(cfg.num_positions, cfg.encoder_width)).astype(np.float32)
    feats = rng.normal(size=(2, 6, cfg.encoder_width)).astype(np.float32)
    params = converted(hf, cfg, queries)
    params["position_embedding"] = pos
    with torch.no_grad():
        want = hf(query_embeds=torch.from_numpy(queries).expand(2, -1, -1),
                  encoder_hidden_states=torch.from_numpy(feats + pos[None, :6])).last_hidden_state.numpy()
    with jax.default_matmul_precision("highest"):
        got = jax.jit(QFormer(cfg).apply)({"params": params}, jnp.asarray(feats))
    assert got.shape == (2, cfg.num_queries, cfg.hidden_size)
    assert float(np.max(np.abs(np.asarray(got) - want))) <= 1e-4


@pytest.mark.slow
def test_valid_mask_equals_dropping_padded_frames():
    cfg = QFormerConfig.tiny(num_positions=8)
    feats = jnp.asarray(np.random.default_rng(1).normal(size=(1, 6, cfg.encoder_width)), jnp.float32)
    m = QFormer(cfg)
    params = jax.jit(m.init)(jax.random.key(0), feats)
    valid = jnp.asarray([[True] * 4 + [False] * 2])
    apply = jax.jit(m.apply)
    padded = apply(params, feats.at[:, 4:].set(99.0), valid)
    short = apply(params, feats[:, :4])
    np.testing.assert_allclose(np.asarray(padded), np.asarray(short), atol=1e-5)


def test_real_presets_param_counts():
    for cfg, want in ((QFormerConfig.video(), 19_748_864), (QFormerConfig.audio(), 19_724_288)):
        shapes = jax.eval_shape(QFormer(cfg).init, jax.random.key(0), jnp.zeros((1, 8, 1024)))
        assert sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(shapes)) == want  # spec §6


def test_bad_inputs_are_named():
    cfg = QFormerConfig.tiny(num_positions=4)
    with pytest.raises(ValueError, match=r"expected features \[B, T, 24\]"):
        QFormer(cfg).init(jax.random.key(0), jnp.zeros((1, 4, 23)))
    with pytest.raises(ValueError, match="only 4 rows"):
        QFormer(cfg).init(jax.random.key(0), jnp.zeros((1, 5, 24)))


@pytest.mark.slow
def test_eight_devices_match_one():
    cfg = QFormerConfig.tiny(num_positions=8)
    m = QFormer(cfg)
    feats = jnp.asarray(np.random.default_rng(2).normal(size=(8, 6, cfg.encoder_width)), jnp.float32)
    params = jax.jit(m.init)(jax.random.key(0), feats)
    single = jax.jit(m.apply)(params, feats)
    mesh = make_mesh((1, 8, 1))
    with jax.set_mesh(mesh), nn.logical_axis_rules(LOGICAL_AXIS_RULES):
        shard = logical_to_shardings(params, mesh)
        sharded = jax.device_put(params, shard)
        x = jax.device_put(feats, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(("data", "fsdp"))))
        multi = jax.jit(m.apply)(sharded, x)
    assert len(multi.sharding.device_set) == 8
    np.testing.assert_allclose(np.asarray(multi), np.asarray(single), atol=1e-5)
