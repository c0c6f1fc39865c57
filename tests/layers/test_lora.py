"""LoRA: identity at init (B = 0), merge == unmerged forward, unmerge inverts merge, peft-style init, names."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from emox_jax.layers.lora import LoRADenseGeneral, lora_param_count, merge_lora, unmerge_lora
from emox_jax.models.qwen2 import Qwen2Config, Qwen2ForCausalLM
from tests.models.test_qwen2 import random_params

BASE = Qwen2Config.tiny(vocab_size=64, hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8,
                        intermediate_size=48)
LORA = BASE.replace(lora_rank=4, lora_alpha=8.0)
IDS = jnp.asarray(np.random.default_rng(0).integers(0, 64, (2, 12)), jnp.int32)


@pytest.fixture(scope="module")
def trees():
    base = random_params(BASE, seed=0)
    lora = random_params(LORA, seed=0)
    # Same base weights under the same names (the LoRA factors are extra leaves filled after them).
    lora = jax.tree_util.tree_map_with_path(lambda p, x: _get(base, p) if p[-1].key not in ("lora_a", "lora_b")
                                            else x, lora)
    return base, lora


def _get(tree, path):
    for p in path:
        tree = tree[p.key]
    return tree


def _logits(cfg, params):
    return np.asarray(jax.jit(lambda p: Qwen2ForCausalLM(cfg).apply({"params": p}, IDS))(params))


def _with_random_b(lora):
    rng = np.random.default_rng(1)

    def fill(path, x):
        return rng.normal(0, 0.05, x.shape).astype(np.float32) if path[-1].key == "lora_b" else x

    return jax.tree_util.tree_map_with_path(fill, lora)


def test_lora_params_are_named_for_the_freezing_regex(trees):
    _, lora = trees
    paths = ["/".join(p.key for p in path) for path, _ in jax.tree_util.tree_flatten_with_path(lora)[0]]
    selected = [p for p in paths if re.fullmatch(r".*lora_.*", p)]
    assert len(selected) == 2 * 7  # A and B for q,k,v,o,gate,up,down (stacked over layers)
    assert "layers/self_attn/q_proj/lora_a" in selected and "layers/mlp/down_proj/lora_b" in selected
    d, r, n, h, f = 32, 4, 4, 8, 48
    q = lora["layers"]["self_attn"]["q_proj"]
    assert q["lora_a"].shape == (2, d, r) and q["lora_b"].shape == (2, r, n, h)
    assert lora["layers"]["self_attn"]["o_proj"]["lora_a"].shape == (2, n, h, r)
    assert lora["layers"]["mlp"]["down_proj"]["lora_a"].shape == (2, f, r)
    assert np.all(q["lora_b"] == 0)
    # peft's kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)); our layer's own init.
    v = nn.meta.unbox(LoRADenseGeneral(8, ("heads", "head_dim", "embed"), n_in=2, rank=64).init(
        jax.random.key(0), jnp.ones((1, n, h))))["params"]
    a = np.asarray(v["lora_a"])
    assert a.shape == (n, h, 64) and np.all(v["lora_b"] == 0)
    assert np.abs(a).max() <= 1 / np.sqrt(n * h) and np.abs(a).max() > 0.9 / np.sqrt(n * h)
    assert lora_param_count(lora) == 2 * (d * r + r * n * h + 2 * (d * r + r * 2 * h) + n * h * r + r * d
                                          + 2 * (d * r + r * f) + f * r + r * d)


def test_lora_with_zero_b_equals_base_model(trees):
    base, lora = trees
    np.testing.assert_allclose(_logits(LORA, lora), _logits(BASE, base), atol=1e-6, rtol=0)


def test_merged_equals_unmerged_and_unmerge_inverts(trees):
    base, lora = trees
    lora = _with_random_b(lora)
    unmerged = _logits(LORA, lora)
    assert np.abs(unmerged - _logits(BASE, base)).max() > 1e-3  # the adapter does something
    merged = merge_lora(lora, LORA)
    assert lora_param_count(merged) == 0
    np.testing.assert_allclose(_logits(BASE, merged), unmerged, atol=1e-5, rtol=0)
    kept = merge_lora(lora, LORA, keep_factors=True)
    restored = unmerge_lora(kept, LORA)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-6), restored, lora)


def test_lora_dropout_is_active_only_when_not_deterministic():
    layer = LoRADenseGeneral(6, ("embed", "mlp"), rank=2, alpha=4.0, dropout=0.5)
    x = jnp.ones((3, 5))
    v = nn.meta.unbox(layer.init(jax.random.key(0), x))
    v = jax.tree_util.tree_map_with_path(
        lambda p, a: jnp.ones_like(a) if p[-1].key == "lora_b" else a, v)
    det = layer.apply(v, x)
    np.testing.assert_array_equal(layer.apply(v, x, True), det)
    d1 = layer.apply(v, x, False, rngs={"dropout": jax.random.key(1)})
    d1b = layer.apply(v, x, False, rngs={"dropout": jax.random.key(1)})
    d2 = layer.apply(v, x, False, rngs={"dropout": jax.random.key(2)})
    np.testing.assert_array_equal(d1, d1b)
    assert not np.allclose(d1, det) and not np.allclose(d1, d2)
