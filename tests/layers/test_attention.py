"""``attention_einsum`` (the CPU layout) against ``jax.nn.dot_product_attention``'s XLA path: values and grads."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emox_jax.layers.attention import attention_einsum, choose_implementation, dot_product_attention


def _qkv(b, t, s, n, k, h, seed=0):
    ks = jax.random.split(jax.random.key(seed), 3)
    return (jax.random.normal(ks[0], (b, t, n, h)), jax.random.normal(ks[1], (b, s, k, h)),
            jax.random.normal(ks[2], (b, s, k, h)))


def _ref(q, k, v, **kw):
    return jax.nn.dot_product_attention(q, k, v, implementation="xla", **kw)


@pytest.mark.parametrize("n,k", [(4, 2), (4, 4), (6, 1)])   # GQA, MHA, MQA
def test_matches_jax_nn_with_padding_and_causal_masks(n, k):
    b, t, h = 3, 7, 8
    q, kk, v = _qkv(b, t, t, n, k, h)
    valid = jnp.arange(t)[None, :] < jnp.asarray([7, 4, 1])[:, None]
    mask = jnp.tril(jnp.ones((t, t), bool))[None, None] & valid[:, None, None, :]   # [B, 1, T, S]
    np.testing.assert_allclose(attention_einsum(q, kk, v, mask=mask), _ref(q, kk, v, mask=mask), atol=2e-6)
    np.testing.assert_allclose(attention_einsum(q, kk, v, is_causal=True), _ref(q, kk, v, is_causal=True),
                               atol=2e-6)


def test_bias_per_head_scale_and_decode_shape():
    b, t, s, n, k, h = 2, 1, 9, 4, 2, 8      # one query over a 9-slot cache
    q, kk, v = _qkv(b, t, s, n, k, h, seed=1)
    bias = jax.random.normal(jax.random.key(5), (1, n, t, s))
    mask = jnp.arange(s)[None, None, None, :] < jnp.asarray([9, 3])[:, None, None, None]
    got = attention_einsum(q, kk, v, mask=mask, bias=bias, scale=0.3)
    np.testing.assert_allclose(got, _ref(q, kk, v, mask=mask, bias=bias, scale=0.3), atol=2e-6)
    assert got.shape == (b, t, n, h) and got.dtype == q.dtype


def test_fully_masked_rows_are_finite_and_match():
    q, kk, v = _qkv(2, 3, 5, 2, 2, 4, seed=2)
    mask = jnp.zeros((2, 1, 3, 5), bool).at[0].set(True)    # row batch 1 sees nothing
    got = attention_einsum(q, kk, v, mask=mask)
    assert bool(jnp.all(jnp.isfinite(got)))
    np.testing.assert_allclose(got, _ref(q, kk, v, mask=mask), atol=2e-6)


def test_gradients_match_jax_nn():
    q, kk, v = _qkv(2, 6, 6, 4, 2, 8, seed=3)
    mask = jnp.tril(jnp.ones((6, 6), bool))[None, None]
    w = jax.random.normal(jax.random.key(9), q.shape)

    def loss(f):
        return lambda q, k, v: jnp.sum(f(q, k, v, mask=mask) * w)

    got = jax.grad(loss(attention_einsum), argnums=(0, 1, 2))(q, kk, v)
    want = jax.grad(loss(_ref), argnums=(0, 1, 2))(q, kk, v)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_platform_choice_and_dispatch():
    assert choose_implementation(jnp.float32, 32, platform="cpu") == "einsum"
    assert choose_implementation(jnp.bfloat16, 64, platform="gpu") == "cudnn"
    assert choose_implementation(jnp.bfloat16, 64, platform="gpu", kernels=False) == "xla"
    assert choose_implementation(jnp.float32, 64, platform="gpu") == "xla"
    q, kk, v = _qkv(1, 4, 4, 2, 1, 8, seed=4)
    np.testing.assert_allclose(dot_product_attention(q, kk, v, implementation="einsum", is_causal=True),
                               dot_product_attention(q, kk, v, implementation="xla", is_causal=True), atol=2e-6)
    with pytest.raises(ValueError, match="not a multiple"):
        attention_einsum(jnp.zeros((1, 2, 3, 4)), jnp.zeros((1, 2, 2, 4)), jnp.zeros((1, 2, 2, 4)))
