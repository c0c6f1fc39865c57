"""Samplers: greedy, top-k / top-p filtering, temperature, determinism; stop-string spelling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emox_jax.infer.sampling import SamplingConfig, sample_logits, top_k_filter, top_p_filter
from emox_jax.infer.stopping import stop_sequences_for_strings, truncate_at_stop_strings


def test_filters_keep_the_right_tokens():
    logits = jnp.log(jnp.array([[0.5, 0.05, 0.3, 0.15], [0.1, 0.2, 0.3, 0.4]]))
    kept_k = np.isfinite(np.asarray(top_k_filter(logits, 2)))
    np.testing.assert_array_equal(kept_k, [[1, 0, 1, 0], [0, 0, 1, 1]])
    # top-p 0.75: row 0 needs 0.5 + 0.3 (0.8 >= 0.75); row 1 needs 0.4 + 0.3 + 0.2.
    kept_p = np.isfinite(np.asarray(top_p_filter(logits, 0.75)))
    np.testing.assert_array_equal(kept_p, [[1, 0, 1, 0], [0, 1, 1, 1]])
    # A tiny p still keeps the most likely token.
    np.testing.assert_array_equal(np.isfinite(np.asarray(top_p_filter(logits, 1e-6))).sum(-1), [1, 1])


def test_sampling_is_greedy_deterministic_and_follows_the_distribution():
    logits = jnp.log(jnp.array([[0.6, 0.3, 0.1]] * 4000))
    np.testing.assert_array_equal(sample_logits(jax.random.key(0), logits, SamplingConfig(greedy=True)), 0)
    np.testing.assert_array_equal(sample_logits(jax.random.key(0), logits, SamplingConfig(temperature=0.0)), 0)
    cfg = SamplingConfig(temperature=1.0)
    a = np.asarray(sample_logits(jax.random.key(3), logits, cfg))
    np.testing.assert_array_equal(a, sample_logits(jax.random.key(3), logits, cfg))
    assert not np.array_equal(a, sample_logits(jax.random.key(4), logits, cfg))
    np.testing.assert_allclose(np.bincount(a, minlength=3) / len(a), [0.6, 0.3, 0.1], atol=0.03)
    hot = np.asarray(sample_logits(jax.random.key(3), logits, SamplingConfig(temperature=0.25)))
    assert (hot == 0).mean() > 0.9  # 0.6^4 / (0.6^4 + 0.3^4 + 0.1^4) = 0.94
    top1 = np.asarray(sample_logits(jax.random.key(3), logits, SamplingConfig(top_k=1)))
    assert np.all(top1 == 0)
    nucleus = np.asarray(sample_logits(jax.random.key(3), logits, SamplingConfig(top_p=0.85)))
    assert set(np.unique(nucleus)) == {0, 1}
    with pytest.raises(ValueError, match="top_p"):
        SamplingConfig(top_p=0.0).validate()


def test_stop_string_spellings_cover_the_reference_triple_hash():
    pieces = ["a", "#", "##", "###", " ###", "b#", "x"]
    seqs = set(stop_sequences_for_strings(["###"], pieces))
    assert {(3,), (2, 1), (1, 2), (1, 1, 1), (4,)} <= seqs
    assert (5, 2) not in seqs  # "b###" straddles a token boundary: caught by text truncation instead
    assert truncate_at_stop_strings("The answer is happy###Human: more", ["###"]) == "The answer is happy"
    with pytest.raises(ValueError, match="cannot be spelled"):
        stop_sequences_for_strings(["zz"], pieces)
