"""Optimizer: warmup + cosine schedule, weight-decay mask, regex freezing (no state, params unchanged)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emox_jax import sharding as shd
from emox_jax.models.qwen2 import Qwen2Config, Qwen2ForCausalLM
from emox_jax.train import lm_step, optim


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


@pytest.mark.slow
def test_frozen_params_unchanged_and_stateless():
    """LoRA-only training of the decoder: base weights frozen by regex, adapters (and only they) move."""
    cfg = Qwen2Config.tiny(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, head_dim=16,
                           intermediate_size=64, vocab_size=128, lora_rank=4, lora_targets=("q_proj", "v_proj"))
    model = Qwen2ForCausalLM(cfg)
    ocfg = optim.OptimConfig(lr=1e-2, min_lr=1e-3, warmup_steps=0, total_steps=10, weight_decay=0.1,
                             trainable_regexes=(r".*lora_.*",))
    tx, schedule = optim.make_optimizer(ocfg)
    mesh = shd.make_mesh((1, 2, 1), jax.devices()[:2])
    state, sh = lm_step.init_train_state(lambda r: model.init(r, jnp.zeros((1, 16), jnp.int32))["params"],
                                         tx, mesh, jax.random.key(0))
    trainable = optim.check_trainable(state.params, ocfg)
    assert trainable and all("lora_" in n for n in trainable)
    before = jax.device_get(state.params)
    step = lm_step.make_train_step(lm_step.lm_loss_fn(model), tx, sh, mesh, schedule=schedule,
                                   trainable_regexes=ocfg.trainable_regexes)
    rng = np.random.default_rng(0)
    toks = rng.integers(0, 128, (4, 17)).astype(np.int32)
    batch = {"input_ids": toks[:, :-1], "targets": toks[:, 1:], "loss_mask": np.ones((4, 16), np.float32)}
    for _ in range(2):
        state, metrics = step(state, lm_step.shard_batch(batch, mesh))
    after = jax.device_get(state.params)
    assert float(metrics["grad_norm"]) > 0
    mask = optim.trainable_mask(before, ocfg.trainable_regexes)
    for (path, b), a, m in zip(jax.tree_util.tree_flatten_with_path(before)[0], jax.tree.leaves(after),
                               jax.tree.leaves(mask)):
        name = optim.path_str(path)
        if m:
            assert not np.array_equal(a, b), f"trainable {name} did not change"
        else:
            np.testing.assert_array_equal(a, b, err_msg=f"frozen {name} changed")
    # Optimizer state holds exactly two Adam moments per trainable param, nothing for frozen ones.
    n_train = sum(int(m) for m in jax.tree.leaves(mask))
    arrays = [x for x in jax.tree.leaves(state.opt_state) if x.ndim > 0]
    assert len(arrays) == 2 * n_train
    train_sizes = sorted(x.size for x, m in zip(jax.tree.leaves(after), jax.tree.leaves(mask)) if m) * 2
    assert sorted(x.size for x in arrays) == sorted(train_sizes)
