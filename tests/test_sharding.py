"""The same 3 train steps on 1 CPU device and on 8 fake devices with several meshes give the same losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emox_jax import sharding as shd
from emox_jax.assets.corpus import read_corpus
from emox_jax.models.qwen2 import Qwen2Config, Qwen2ForCausalLM
from emox_jax.tokenizer import tiny_tokenizer
from emox_jax.train import lm_data, lm_step, optim

SEQ, BATCH = 32, 8
# Small enough to compile fast; head/MLP/vocab/embed dims divide every mesh axis used below.
CFG = Qwen2Config.tiny(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=16,
                       intermediate_size=128)
# Embeddings and the final norm are frozen by regex (what a phase config does), so the same run also checks
# freezing: frozen params unchanged after the steps and without optimizer state, on every mesh.
OPT = optim.OptimConfig(lr=1e-2, min_lr=1e-3, warmup_steps=1, warmup_init_lr=1e-3, total_steps=10,
                        grad_clip_norm=1.0, trainable_regexes=(r"layers/.*",))


def _batch():
    # Real packed text: several lines per row, so segment masking and per-line RoPE positions are exercised.
    arrays = lm_data.pack_lines(read_corpus()[:200], tiny_tokenizer(), SEQ)
    return {k: v[:BATCH] for k, v in arrays.items()}


def _init_params(rng):
    return Qwen2ForCausalLM(CFG).init(rng, jnp.zeros((1, SEQ), jnp.int32))["params"]


def _three_steps(mesh, host_state, batch):
    """3 updates from the same initial values, placed on ``mesh`` with the rules' shardings."""
    tx, schedule = optim.make_optimizer(OPT)
    with jax.set_mesh(mesh):
        boxed = jax.eval_shape(_init_params, jax.random.key(0))
    sh = lm_step.state_shardings(boxed, tx, mesh)
    # device_put (no compile) instead of a sharded init per mesh: every mesh starts from identical values.
    state = jax.device_put(host_state, sh)
    step = lm_step.make_train_step(lm_step.lm_loss_fn(Qwen2ForCausalLM(CFG)), tx, sh, mesh, schedule=schedule,
                                   trainable_regexes=OPT.trainable_regexes)
    losses, norms = [], []
    for _ in range(3):
        state, m = step(state, lm_step.shard_batch(batch, mesh))
        losses.append(float(m["loss"]))
        norms.append(float(m["grad_norm"]))
    return np.array(losses), np.array(norms), state


@pytest.mark.slow
def test_same_losses_across_meshes():
    assert jax.device_count() == 8, "conftest must provide 8 fake CPU devices"
    batch = _batch()
    one = shd.make_mesh((1, 1, 1), jax.devices()[:1])
    tx, _ = optim.make_optimizer(OPT)
    init_state, _ = lm_step.init_train_state(_init_params, tx, one, jax.random.key(0))
    host_state = jax.device_get(init_state)
    ref_losses, ref_norms, _ = _three_steps(one, host_state, batch)
    assert ref_losses[2] < ref_losses[0]  # the steps really train
    for shape in [(1, 8, 1), (2, 2, 2), (8, 1, 1)]:
        losses, norms, state = _three_steps(shd.make_mesh(shape), host_state, batch)
        # fp32 throughout; sharded runs only reorder reductions (matmul contractions split over fsdp/tensor,
        # the loss mean over the batch shards), which moves results by a few ulps (~1e-7 relative) per op.
        # Three AdamW steps carry that forward, so we allow 1e-5 relative: far below the per-step loss change
        # (~1e-1) and far above reduction-order noise.
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, err_msg=f"mesh {shape}")
        np.testing.assert_allclose(norms, ref_norms, rtol=1e-4, err_msg=f"mesh {shape}")
        # Params and their Adam moments really are sharded as the rules say.
        q = state.params["layers"]["self_attn"]["q_proj"]["kernel"]
        assert q.sharding.spec == shd.logical_spec(("layers", "embed", "heads", "head_dim"))
        mu = state.opt_state.inner_states["trainable"].inner_state[1][0].mu
        assert mu["layers"]["self_attn"]["q_proj"]["kernel"].sharding.spec == q.sharding.spec
        _check_freezing(host_state, jax.device_get(state))


def _check_freezing(before, after):
    """Frozen params (not matching OPT.trainable_regexes) unchanged, trainable ones moved; the optimizer holds
    exactly two Adam moments per trainable param and nothing for frozen ones."""
    mask = optim.trainable_mask(before.params, OPT.trainable_regexes)
    for (path, b), a, m in zip(jax.tree_util.tree_flatten_with_path(before.params)[0],
                               jax.tree.leaves(after.params), jax.tree.leaves(mask)):
        name = optim.path_str(path)
        if m:
            assert not np.array_equal(a, b), f"trainable {name} did not change"
        else:
            np.testing.assert_array_equal(a, b, err_msg=f"frozen {name} changed")
    assert not all(jax.tree.leaves(mask)) and any(jax.tree.leaves(mask))
    moments = [x for x in jax.tree.leaves(after.opt_state) if np.ndim(x) > 0]
    trained = [a.size for a, m in zip(jax.tree.leaves(after.params), jax.tree.leaves(mask)) if m]
    assert sorted(x.size for x in moments) == sorted(trained * 2)


def test_batch_must_divide_over_data_and_fsdp():
    mesh = shd.make_mesh((2, 2, 2))
    with pytest.raises(ValueError):
        lm_step.shard_batch({"input_ids": np.zeros((6, SEQ), np.int32)}, mesh)
