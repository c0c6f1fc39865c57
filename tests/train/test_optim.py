"""Optimizer: warmup + cosine schedule, weight-decay mask, regex freezing.

Freezing inside a real sharded train step (frozen params unchanged, no optimizer state) is checked on every
mesh by ``tests/test_sharding.py``, which trains with ``trainable_regexes``; here the labels themselves.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emox_jax.train import optim


def test_schedule_warms_up_then_cosine():
    cfg = optim.OptimConfig(lr=1e-3, min_lr=1e-4, warmup_init_lr=1e-6, warmup_steps=10, total_steps=110)
    s = optim.lr_schedule(cfg)
    lrs = np.array([float(s(i)) for i in range(111)])
    np.testing.assert_allclose(lrs[0], 1e-6, rtol=1e-5)  # really starts at the warmup lr (reference never did)
    assert np.all(np.diff(lrs[:11]) > 0)  # rising during warmup
    np.testing.assert_allclose(lrs[10], 1e-3, rtol=1e-5)
    assert np.all(np.diff(lrs[10:]) <= 1e-12)  # then monotone cosine decay
    np.testing.assert_allclose(lrs[60], 1e-4 + 0.5 * (1e-3 - 1e-4), rtol=1e-4)  # half-way point of the cosine
    np.testing.assert_allclose(lrs[110], 1e-4, rtol=1e-5)


def test_decay_mask_and_paths():
    params = {"layers": {"q_proj": {"kernel": jnp.ones((2, 4, 4)), "bias": jnp.ones((2, 4))},
                         "input_layernorm": {"scale": jnp.ones((2, 4))}},
              "query_tokens": jnp.ones((1, 3, 4)), "embed": {"embedding": jnp.ones((8, 4))}}
    mask = optim.decay_mask(params, optim.OptimConfig().no_decay_regexes)
    # A scanned bias/scale is 2-D: an ndim >= 2 rule would decay it; the name rule does not.
    assert mask["layers"]["q_proj"] == {"kernel": True, "bias": False}
    assert mask["layers"]["input_layernorm"]["scale"] is False
    assert mask["query_tokens"] is True and mask["embed"]["embedding"] is True
    assert "layers/q_proj/bias" in optim.param_paths(params)


def test_weight_decay_applies_only_where_masked():
    # With zero gradients AdamW's update is pure decay: lr * wd * p on decayed leaves, nothing elsewhere.
    cfg = optim.OptimConfig(lr=0.1, min_lr=0.1, warmup_steps=0, total_steps=10, weight_decay=0.5)
    tx, _ = optim.make_optimizer(cfg)
    params = {"dense": {"kernel": jnp.full((3, 3), 2.0), "bias": jnp.full((3,), 2.0)}, "norm": {"scale": jnp.ones(3)}}
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zeros, tx.init(params), params)
    np.testing.assert_allclose(updates["dense"]["kernel"], -0.1 * 0.5 * 2.0, rtol=1e-6)
    assert float(jnp.abs(updates["dense"]["bias"]).max()) == 0.0
    assert float(jnp.abs(updates["norm"]["scale"]).max()) == 0.0


def test_config_validation():
    with pytest.raises(ValueError, match="warmup_steps"):
        optim.OptimConfig(warmup_steps=10, total_steps=10).validate()
    with pytest.raises(ValueError, match="min_lr"):
        optim.OptimConfig(lr=1e-4, min_lr=1e-3).validate()
    with pytest.raises(ValueError, match="match no parameter"):
        optim.check_trainable({"a": {"kernel": jnp.ones(2)}}, optim.OptimConfig(trainable_regexes=(".*lora_.*",)))


def test_frozen_params_get_no_state_and_zero_updates():
    cfg = optim.OptimConfig(lr=0.1, min_lr=0.1, warmup_steps=0, total_steps=10, trainable_regexes=(r".*lora_.*",))
    tx, _ = optim.make_optimizer(cfg)
    params = {"q_proj": {"kernel": jnp.ones((4, 4)), "bias": jnp.ones(4), "lora_a": jnp.ones((4, 2)),
                         "lora_b": jnp.zeros((2, 4))}}
    state = tx.init(params)
    # Adam moments exist for the two LoRA factors only (frozen leaves are MaskedNode: no arrays).
    moments = [x for x in jax.tree.leaves(state) if x.ndim > 0]
    assert sorted(x.shape for x in moments) == sorted([(4, 2), (2, 4)] * 2)
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = tx.update(grads, state, params)
    assert float(jnp.abs(updates["q_proj"]["kernel"]).max()) == 0.0
    assert float(jnp.abs(updates["q_proj"]["bias"]).max()) == 0.0
    assert float(jnp.abs(updates["q_proj"]["lora_b"]).min()) > 0.0
    assert optim.check_trainable(params, cfg) == ["q_proj/lora_a", "q_proj/lora_b"]
