"""Q-Former vs transformers ``Blip2QFormerModel`` (fp32, tiny, cross_attention_frequency=1), masks, sharding.

BLIP-2's query path is exactly the spec's layout (emb LN on the queries, post-LN self-attn, cross-attn every
layer, query FFN), so the HF model is the reference; the frame position table (not part of BLIP-2) is
checked by adding it to HF's encoder input by hand.
"""

from __future__ import annotations

import contextlib
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import linen as nn

from emox_jax.convert.qformer import qformer_params_from_state_dict
from emox_jax.models.qformer import QFormer, QFormerConfig
from emox_jax.sharding import LOGICAL_AXIS_RULES, logical_to_shardings, make_mesh


# These programs are tiny: XLA's LLVM optimisation costs far more CPU than it saves at run time, and it does not
# change the maths (fp32 results agree to ~1 ulp), so the tests compile at backend optimisation level 0.
quick_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


@contextlib.contextmanager
def quick_compiles():
    """The same for code we do not jit ourselves (the parity CLI): JAX's global switch, restored afterwards."""
    old = jax.config.values["jax_disable_most_optimizations"]
    jax.config.update("jax_disable_most_optimizations", True)
    try:
        yield
    finally:
        jax.config.update("jax_disable_most_optimizations", old)


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


@functools.cache
def tiny_qformer_run() -> dict:
    """A tiny Q-Former converted from a random ``Blip2QFormerModel`` + a frame position table, run once.

    ``feats [8, 6, 24]`` (batch 8 so the eight-device test can shard it); the jitted apply and its outputs are
    shared by the parity, padding-mask and sharding tests (one XLA compile for all single-device runs).
    """
    cfg = QFormerConfig.tiny(num_positions=8)
    hf = hf_qformer(cfg)
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(1, cfg.num_queries, cfg.hidden_size)).astype(np.float32)
    pos = rng.normal(size=(cfg.num_positions, cfg.encoder_width)).astype(np.float32)
    feats = rng.normal(size=(8, 6, cfg.encoder_width)).astype(np.float32)
    params = converted(hf, cfg, queries)
    params["position_embedding"] = pos
    with torch.no_grad():
        want = hf(query_embeds=torch.from_numpy(queries).expand(8, -1, -1),
                  encoder_hidden_states=torch.from_numpy(feats + pos[None, :6])).last_hidden_state.numpy()
    model = QFormer(cfg)
    valid = np.asarray([[True] * 4 + [False] * 2] * 8)

    def run(variables, feats, valid, short):
        """Full features; the same with the last frames padded to 99 and masked; only the unpadded frames."""
        padded = jnp.where(valid[..., None], feats, 99.0)
        return model.apply(variables, feats), model.apply(variables, padded, valid), model.apply(variables, short)

    apply = quick_jit(run)
    with jax.default_matmul_precision("highest"):
        got, padded, short = apply({"params": params}, jnp.asarray(feats), jnp.asarray(valid),
                                   jnp.asarray(feats[:, :4]))
    return dict(cfg=cfg, params=params, feats=feats, valid=valid, want=want, got=np.asarray(got),
                padded=np.asarray(padded), short=np.asarray(short), apply=apply)


@pytest.mark.slow
def test_qformer_matches_blip2_qformer_with_positions():
    r = tiny_qformer_run()
    assert r["got"].shape == (8, r["cfg"].num_queries, r["cfg"].hidden_size)
    assert float(np.max(np.abs(r["got"] - r["want"]))) <= 1e-4


@pytest.mark.slow
def test_valid_mask_equals_dropping_padded_frames():
    r = tiny_qformer_run()
    np.testing.assert_allclose(r["padded"], r["short"], atol=1e-5)
    assert not np.allclose(r["short"], r["got"], atol=1e-3)  # the dropped frames did matter


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
    r = tiny_qformer_run()  # the single-device run of the same jitted function
    mesh = make_mesh((1, 8, 1))
    with jax.set_mesh(mesh), nn.logical_axis_rules(LOGICAL_AXIS_RULES):
        # logical axis names come from an abstract init (no compile); the values are the converted params
        boxed = jax.eval_shape(QFormer(r["cfg"]).init, jax.random.key(0), jnp.asarray(r["feats"]))
        sharded = jax.device_put({"params": r["params"]}, logical_to_shardings(boxed, mesh))
        batch = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(("data", "fsdp")))
        x, valid, short = (jax.device_put(a, batch) for a in (r["feats"], r["valid"], r["feats"][:, :4]))
        with jax.default_matmul_precision("highest"):
            multi, padded, short = r["apply"](sharded, x, valid, short)
    assert any(len(leaf.sharding.device_set) == 8 and not leaf.sharding.is_fully_replicated
               for leaf in jax.tree_util.tree_leaves(sharded))  # params really are split over the mesh
    assert len(multi.sharding.device_set) == 8
    np.testing.assert_allclose(np.asarray(multi), r["got"], atol=1e-5)
    np.testing.assert_allclose(np.asarray(padded), r["padded"], atol=1e-5)
    np.testing.assert_allclose(np.asarray(short), r["short"], atol=1e-5)
