"""Our Qwen2 decoder on its own: param count of the real preset, scan == loop, KV cache == full forward,
padding / packing / inputs_embeds invariances, remat, config validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from emox_jax.config_utils import ConfigError, from_config
from emox_jax.models.qwen2 import (Qwen2Config, Qwen2ForCausalLM, count_params, stack_layer_params,
                                   unstack_layer_params)

CFG = Qwen2Config.tiny(vocab_size=97, hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8,
                       intermediate_size=64)


def random_params(config, seed=0, std=0.1):
    """Random fp32 params for ``config`` without compiling ``init`` (eval_shape + numpy): weights N(0, std),
    biases too, norm scales 1 + N(0, std), ``lora_b`` zeros, ``lora_a`` U(+-1/sqrt(fan_in))."""
    shapes = nn.meta.unbox(jax.eval_shape(Qwen2ForCausalLM(config).init, jax.random.key(0),
                                          jnp.zeros((1, 4), jnp.int32))["params"])
    rng = np.random.default_rng(seed)

    def fill(path, s):
        name = path[-1].key
        if name == "lora_b":
            return np.zeros(s.shape, np.float32)
        if name == "lora_a":
            bound = 1 / np.sqrt(np.prod(s.shape[1 if config.scan_layers and "layers" in str(path[0]) else 0:-1]))
            return rng.uniform(-bound, bound, s.shape).astype(np.float32)
        x = rng.standard_normal(s.shape).astype(np.float32) * std
        return 1.0 + x if name == "scale" else x

    return jax.tree_util.tree_map_with_path(fill, shapes)


@pytest.fixture(scope="module")
def params():
    return random_params(CFG)


@jax.jit
def _apply_cfg(params, kw):
    return Qwen2ForCausalLM(CFG).apply({"params": params}, **kw)


def apply(params, config=CFG, **kw):
    if config is CFG:
        return _apply_cfg(params, kw)
    return jax.jit(lambda p, kw: Qwen2ForCausalLM(config).apply({"params": p}, **kw))(params, kw)


def test_qwen2_5_1_5b_preset_has_exactly_the_published_parameter_count():
    model = Qwen2ForCausalLM(Qwen2Config.qwen2_5_1_5b())
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 8), jnp.int32))
    assert all(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(shapes))
    assert count_params(shapes["params"]) == 1_543_714_304
    # Every parameter carries logical axis names, the scanned ones with a leading 'layers' axis.
    boxed = jax.tree.leaves(shapes["params"], is_leaf=lambda x: hasattr(x, "names"))
    assert all(hasattr(b, "names") for b in boxed)
    q = shapes["params"]["layers"]["self_attn"]["q_proj"]["kernel"]
    assert q.names == ("layers", "embed", "heads", "head_dim") and q.value.shape == (28, 1536, 12, 128)
    assert shapes["params"]["embed_tokens"]["embedding"].names == ("vocab", "embed")
    # The numpy filler used by the tests mirrors init's tree exactly.
    assert jax.tree.structure(nn.meta.unbox(shapes["params"])) == jax.tree.structure(
        random_params(Qwen2Config.qwen2_5_1_5b().replace(num_layers=1, vocab_size=8, hidden_size=16,
                                                         intermediate_size=8, head_dim=4)))


def test_lora_r16_on_all_projections_adds_the_reference_count():
    model = Qwen2ForCausalLM(Qwen2Config.qwen2_5_1_5b(lora_rank=16))
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 8), jnp.int32))
    assert count_params(shapes["params"]) == 1_543_714_304 + 18_464_768


def test_scan_and_unscanned_loop_give_the_same_logits(params):
    ids = jax.random.randint(jax.random.key(2), (2, 24), 0, CFG.vocab_size)
    scanned = apply(params, input_ids=ids)
    loop_cfg = CFG.replace(scan_layers=False)
    loop_params = unstack_layer_params(params)
    assert "layers_1" in loop_params and "layers" not in loop_params
    looped = apply(loop_params, loop_cfg, input_ids=ids)
    np.testing.assert_allclose(np.asarray(looped), np.asarray(scanned), atol=1e-5, rtol=0)
    restacked = stack_layer_params(loop_params, CFG.num_layers)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), restacked, params))


def test_remat_full_gives_same_logits_and_grads(params):
    ids = jax.random.randint(jax.random.key(3), (2, 16), 0, CFG.vocab_size)

    def loss(p, cfg):
        return jnp.mean(Qwen2ForCausalLM(cfg).apply({"params": p}, ids) ** 2)

    l0, g0 = jax.jit(jax.value_and_grad(lambda p: loss(p, CFG)))(params)
    l1, g1 = jax.jit(jax.value_and_grad(lambda p: loss(p, CFG.replace(remat_policy="full"))))(params)
    np.testing.assert_allclose(l1, l0, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-5), g1, g0)


def test_kv_cache_decode_logits_equal_full_forward(params):
    # Two right-padded rows of lengths 14 and 9: prefill the first 6 slots, then decode one token at a time.
    lengths = np.array([14, 9])
    ids = jax.random.randint(jax.random.key(4), (2, 14), 0, CFG.vocab_size)
    seg = (np.arange(14)[None] < lengths[:, None]).astype(np.int32)
    full = np.asarray(apply(params, input_ids=ids, segment_ids=seg))
    model = Qwen2ForCausalLM(CFG)
    step = jax.jit(lambda p, x, s, c: model.apply({"params": p}, x, segment_ids=s, cache=c))
    cache = model.init_cache(2, 16)
    logits, cache = step(params, ids[:, :6], seg[:, :6], cache)
    got = [np.asarray(logits)]
    for t in range(6, 14):
        logits, cache = step(params, ids[:, t:t + 1], seg[:, t:t + 1], cache)
        got.append(np.asarray(logits))
    got = np.concatenate(got, axis=1)
    assert int(cache.end) == 14 and np.asarray(cache.next_positions()).tolist() == [14, 9]
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(got[b, :n], full[b, :n], atol=2e-5, rtol=0)


def test_right_left_padding_and_packing_do_not_change_real_token_logits(params):
    a = jax.random.randint(jax.random.key(5), (1, 7), 0, CFG.vocab_size)
    b = jax.random.randint(jax.random.key(6), (1, 5), 0, CFG.vocab_size)
    pad = jnp.zeros((1, 3), jnp.int32)
    # Each sequence alone, followed by filler that a causal model cannot see (one [1, 10] shape, one compile).
    alone_a = np.asarray(apply(params, input_ids=jnp.concatenate([a, pad], axis=1)))[0, :7]
    alone_b = np.asarray(apply(params, input_ids=jnp.concatenate([b, pad, pad[:, :2]], axis=1)))[0, :5]
    right = jnp.concatenate([b, pad, pad[:, :2]], axis=1)  # [1, 10]
    left = jnp.concatenate([pad, pad[:, :2], b], axis=1)
    packed = jnp.concatenate([a, b[:, :3]], axis=1)  # [1, 10]: a (segment 1) then b[:3] (segment 2)
    batch = jnp.concatenate([right, left, packed])
    seg = np.array([[1] * 5 + [0] * 5, [0] * 5 + [1] * 5, [1] * 7 + [2] * 3], np.int32)
    out = np.asarray(apply(params, input_ids=batch, segment_ids=seg))
    assert np.isfinite(out).all()  # fully-masked padding queries must not produce NaNs
    np.testing.assert_allclose(out[0, :5], alone_b, atol=1e-5)
    np.testing.assert_allclose(out[1, 5:], alone_b, atol=1e-5)
    np.testing.assert_allclose(out[2, :7], alone_a, atol=1e-5)
    np.testing.assert_allclose(out[2, 7:], alone_b[:3], atol=1e-5)
    # Without segment ids the second sequence would see the first: the test is sensitive to the mask.
    unmasked = np.asarray(apply(params, input_ids=batch[2:]))
    assert np.abs(unmasked[0, 7:] - alone_b[:3]).max() > 1e-3


def test_inputs_embeds_path_equals_input_ids_path(params):
    ids = jax.random.randint(jax.random.key(7), (2, 9), 0, CFG.vocab_size)
    model = Qwen2ForCausalLM(CFG)
    emb = model.apply({"params": params}, ids, method="embed")
    assert emb.shape == (2, 9, CFG.hidden_size)
    np.testing.assert_allclose(np.asarray(apply(params, inputs_embeds=emb)), np.asarray(apply(params, input_ids=ids)),
                               atol=1e-6)
    with pytest.raises(ValueError, match="exactly one of input_ids"):
        model.apply({"params": params}, ids, inputs_embeds=emb)


def test_config_from_hf_reads_rope_theta_either_place_and_validates():
    base = dict(model_type="qwen2", vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, intermediate_size=128, rms_norm_eps=1e-6, tie_word_embeddings=True)
    assert Qwen2Config.from_hf({**base, "rope_theta": 5e5}).rope_theta == 5e5
    v5 = Qwen2Config.from_hf({**base, "rope_theta": None,
                              "rope_parameters": {"rope_type": "default", "rope_theta": 2e4}})
    assert v5.rope_theta == 2e4 and v5.head_dim == 16 and v5.tie_word_embeddings
    with pytest.raises(ConfigError, match="rope_theta"):
        Qwen2Config.from_hf(base)
    with pytest.raises(ConfigError, match="divisible by num_kv_heads"):
        Qwen2Config.tiny(num_heads=4, num_kv_heads=3)
    with pytest.raises(ConfigError, match="num_layer"):
        from_config(Qwen2Config, {"num_layer": 3}, where="model.decoder")
    cfg = from_config(Qwen2Config, {**Qwen2Config.tiny().__dict__, "lora_rank": 8})
    assert cfg.lora_rank == 8 and hash(cfg)
