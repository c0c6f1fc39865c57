"""Orbax wrapper: round trip, restore onto another mesh, metadata checks, finalised-only steps, data iterator."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emox_jax import sharding as shd
from emox_jax.models.qwen2 import Qwen2Config, Qwen2ForCausalLM
from emox_jax.train import checkpoint as ck
from emox_jax.train import lm_data, lm_step, optim

CFG = Qwen2Config.tiny(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, head_dim=16,
                       intermediate_size=64, vocab_size=128)
OPT = optim.OptimConfig(lr=1e-2, min_lr=1e-3, warmup_steps=0, total_steps=10, trainable_regexes=(r"layers/.*",))


def _init_params(rng):
    return Qwen2ForCausalLM(CFG).init(rng, jnp.zeros((1, 8), jnp.int32))["params"]


def _random_state(mesh, tx, seed=0):
    """A full train state (params + AdamW moments) with random values, placed with the rules' shardings on
    ``mesh``. Built on the host and device_put: no compile, and every leaf (moments too) is non-trivial."""
    with jax.set_mesh(mesh):
        boxed = jax.eval_shape(_init_params, jax.random.key(0))
    abstract = lm_step.abstract_train_state(boxed, tx, mesh)
    rng = np.random.default_rng(seed)
    host = jax.tree.map(lambda a: rng.standard_normal(a.shape).astype(a.dtype) if a.ndim else np.asarray(7, a.dtype),
                        abstract)
    return jax.device_put(host, jax.tree.map(lambda a: a.sharding, abstract))


@pytest.fixture(scope="module")
def trained():
    tx, _ = optim.make_optimizer(OPT)
    return _random_state(shd.make_mesh((2, 2, 2)), tx), tx


def _items(state):
    return {"params": state.params, "opt_state": state.opt_state}


def _assert_equal_trees(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.slow
def test_round_trip_and_restore_on_other_mesh(trained, tmp_path):
    state, tx = trained
    meta = {"job": "lm", "phase": "phase3", "preset": "tiny", "model": {"hidden_size": 32}}
    with ck.Checkpointer(tmp_path, max_to_keep=2) as c:
        for s in (1, 2, 3):  # keep-last-2
            c.save(s, _items(state), metadata=meta)
        c.wait()
        assert c.steps() == [2, 3] and c.latest_step() == 3
    # Restore onto a different mesh: the target carries (1,8,1) shardings; Orbax reshards on read.
    mesh_b = shd.make_mesh((1, 8, 1))
    with jax.set_mesh(mesh_b):
        boxed = jax.eval_shape(_init_params, jax.random.key(0))
    target = lm_step.abstract_train_state(boxed, tx, mesh_b)
    with ck.Checkpointer(tmp_path) as c:
        items, got = c.restore(None, _items(target), expect={"phase": "phase3", "preset": "tiny"})
    assert got["step"] == 3 and got["model"] == {"hidden_size": 32} and "jax" in got["versions"]
    _assert_equal_trees(items["params"], state.params)
    _assert_equal_trees(items["opt_state"], state.opt_state)
    kernel = items["params"]["layers"]["mlp"]["up_proj"]["kernel"]
    assert kernel.sharding.mesh.devices.shape == (1, 8, 1)
    assert kernel.sharding.spec == shd.logical_spec(("layers", "embed", "mlp"))
    mu = items["opt_state"].inner_states["trainable"].inner_state[0].mu
    assert mu["layers"]["mlp"]["up_proj"]["kernel"].sharding == kernel.sharding
    # Params only (e.g. the next phase starting from this one's weights), onto a single device.
    one = shd.make_mesh((1, 1, 1), jax.devices()[:1])
    with jax.set_mesh(one):
        boxed1 = jax.eval_shape(_init_params, jax.random.key(0))
    params, _ = ck.restore_params_only(tmp_path, lm_step.abstract_train_state(boxed1, tx, one).params)
    _assert_equal_trees(params, state.params)


@pytest.mark.slow
def test_mismatched_metadata_raises(trained, tmp_path):
    state, _ = trained
    with ck.Checkpointer(tmp_path, async_save=False) as c:
        c.save(5, {"params": state.params}, metadata={"phase": "phase2", "preset": "tiny",
                                                       "model": {"hidden_size": 32, "num_layers": 2}})
        target = {"params": ck.abstract_like(state.params)}
        with pytest.raises(ck.CheckpointMismatchError, match="phase: checkpoint has 'phase2', expected 'phase3'"):
            c.restore(None, target, expect={"phase": "phase3"})
        with pytest.raises(ck.CheckpointMismatchError, match="model.num_layers: checkpoint has 2, expected 4"):
            c.restore(None, target, expect={"model": {"hidden_size": 32, "num_layers": 4}})
        with pytest.raises(ck.CheckpointMismatchError, match="no item.*opt_state"):
            c.restore(None, {"opt_state": ck.abstract_like(state.params)})
        with pytest.raises(FileNotFoundError, match="step 7"):
            c.restore(7, target)


def test_unfinalised_checkpoints_do_not_count(tmp_path):
    with ck.Checkpointer(tmp_path, async_save=False) as c:
        c.save(1, {"params": {"w": np.arange(4.0)}}, metadata={"preset": "tiny"})
    # A save that crashed mid-way leaves Orbax's temporary directory; a bare step folder without the commit
    # marker / metadata is not a checkpoint either.
    (tmp_path / "4.orbax-checkpoint-tmp-123").mkdir()
    (tmp_path / "4.orbax-checkpoint-tmp-123" / "params").mkdir()
    (tmp_path / "9").mkdir()
    with ck.Checkpointer(tmp_path) as c:
        assert c.steps() == [1] and c.latest_step() == 1
        items, meta = c.restore(None, {"params": {"w": np.zeros(4)}})
        np.testing.assert_array_equal(items["params"]["w"], np.arange(4.0))
    with pytest.raises(FileNotFoundError, match="no finalised checkpoint"):
        ck.Checkpointer(tmp_path / "empty").restore(None, {"params": {"w": np.zeros(4)}})


def test_data_iterator_state_round_trip(tmp_path):
    arrays = {"input_ids": np.arange(40, dtype=np.int32).reshape(10, 4)}
    it = iter(lm_data.lm_batches(arrays, 2, seed=3, num_epochs=2))
    next(it), next(it)
    with ck.Checkpointer(tmp_path, async_save=False) as c:
        c.save(2, {"params": {"w": np.ones(2)}}, data_iter=it)
    expected = [next(it)["input_ids"] for _ in range(3)]
    it2 = iter(lm_data.lm_batches(arrays, 2, seed=3, num_epochs=2))
    with ck.Checkpointer(tmp_path) as c:
        c.restore(None, {"params": {"w": np.zeros(2)}}, data_iter=it2)
    for e in expected:
        np.testing.assert_array_equal(next(it2)["input_ids"], e)
