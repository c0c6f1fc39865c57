"""RoPE: norm-preserving rotation whose q.k depends only on the position offset; matches the closed form."""

import jax
import jax.numpy as jnp
import numpy as np

from emox_jax.layers.rope import apply_rope, rope_cos_sin


def test_rope_is_a_relative_rotation():
    q = jax.random.normal(jax.random.key(0), (1, 1, 2, 16))
    k = jax.random.normal(jax.random.key(1), (1, 1, 2, 16))

    def rot(x, pos):
        cos, sin = rope_cos_sin(jnp.array([[pos]]), 16, 10_000.0)
        return apply_rope(x, cos, sin)

    np.testing.assert_allclose(jnp.linalg.norm(rot(q, 37)), jnp.linalg.norm(q), rtol=1e-5)
    dots = [float(jnp.sum(rot(q, m) * rot(k, m - 5))) for m in (5, 40, 300)]
    np.testing.assert_allclose(dots, dots[0], rtol=1e-4)
    assert abs(float(jnp.sum(rot(q, 9) * rot(k, 3))) - dots[0]) > 1e-3


def test_rope_first_pair_matches_closed_form():
    x = jnp.zeros((1, 1, 1, 4)).at[..., 0].set(1.0)  # unit vector on dim 0 (paired with dim 2)
    cos, sin = rope_cos_sin(jnp.array([[3]]), 4, 100.0)
    y = np.asarray(apply_rope(x, cos, sin))[0, 0, 0]
    np.testing.assert_allclose(y, [np.cos(3.0), 0.0, np.sin(3.0), 0.0], atol=1e-6)
