"""P2E trainer: freezing per phase, mesh independence, exact resume (same and other mesh), phase handoff,
checkpoint mismatch, NaN skipping. Tiny preset, synthetic global batches, 8 fake CPU devices (conftest).

Tolerances: the same mesh resumed from a checkpoint is bitwise identical. Runs on different meshes agree to
rtol 5e-5: measured, the step-1 loss (before any update) of phase 1a differs by 7e-8 relative between 1 and 8
devices when XLA compiles with ``--xla_backend_optimization_level=0`` and by ~8e-6 with the default
optimisations (2e-5 by step 2). The sharded program is the same computation either way; what changes with the
per-device shapes is XLA CPU's optimised code generation (vectorised loops and polynomial approximations of
exp/log/tanh), not the sharding logic, so the tolerance covers codegen differences and nothing more.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import traverse_util

from emox_jax import sharding as shd
from emox_jax.train import checkpoint as ckpt_lib
from emox_jax.train import loop
from emox_jax.train import p2e_job as J
from emox_jax.train import p2e_step as S
from tests.train.p2e_testlib import synthetic_batch, tiny_job

pytestmark = pytest.mark.slow
MESH_RTOL = 5e-5


def _run(job, wd, mesh=None, **kw):
    return loop.train_phase(job, wd, batch_source=lambda s: synthetic_batch(job, s), mesh=mesh,
                            log_fn=lambda s: None, **kw)


def _flat(tree):
    return {S.path_of(k): np.asarray(v) for k, v in traverse_util.flatten_dict(tree).items()}


def _initial(job):
    boxed = J.abstract_boxed(job.model)
    mesh = shd.make_mesh((1, -1, 1))
    sh = S.param_shardings(boxed, mesh, shd.logical_axis_rules())
    from flax import linen as nn

    return J.initial_params(job, nn.meta.unbox(boxed), sh, log=lambda *_: None)


@pytest.fixture(scope="module")
def phase_runs(tmp_path_factory):
    """Each phase trained 2 steps (1a, 1b from the base; 2 from 1a+1b; 3 from 2), on all 8 devices."""
    root = tmp_path_factory.mktemp("p2e")
    out = {}
    for phase, init in (("phase1a", ()), ("phase1b", ()), ("phase2", ("phase1a", "phase1b")), ("phase3", ("phase2",))):
        job = tiny_job(phase, steps=2)
        job = J.PhaseJob(**{**job.__dict__, "init_from": tuple(str(root / p) for p in init)})
        res = _run(job, root / phase)
        out[phase] = (job, res, root / phase)
    return out


def test_freezing_each_phase(phase_runs):
    for phase, (job, res, wd) in phase_runs.items():
        assert res.final_step == 2 and all(np.isfinite(res.losses)), (phase, res.losses)
        before = _flat(_initial(job))
        _, after, meta = J.load_for_inference(str(wd))
        after = _flat(after)
        trainable = set(meta["trainable_paths"])
        assert trainable and set(before) == set(after)
        for p in before:
            if p in trainable:
                assert not np.array_equal(before[p], after[p]), f"{phase}: trainable {p} did not change"
            else:
                assert np.array_equal(before[p], after[p]), f"{phase}: frozen {p} changed"
        # Frozen params have no optimizer state and are not in the checkpoint.
        n_train = sum(before[p].size for p in trainable)
        assert n_train == S.count(J.trainable_split(job, _initial(job))[0])


def test_no_mfu_without_a_known_peak(phase_runs):
    for _, res, _ in phase_runs.values():   # CPU, loop.peak_flops_per_device 0: no made-up MFU
        assert res.history and all("mfu" not in h for h in res.history)


def test_phase_handoff_loads_previous_phases(phase_runs):
    job2, _, _ = phase_runs["phase2"]
    start2 = _flat(_initial(job2))
    a = _flat(J.load_for_inference(str(phase_runs["phase1a"][2]))[1])
    b = _flat(J.load_for_inference(str(phase_runs["phase1b"][2]))[1])
    fresh = _flat(_initial(tiny_job("phase2")))  # no init_from: the base model
    for p, v in start2.items():
        top = p.split("/")[0]
        src = a if top.startswith("audio") else b if top in ("video_qformer", "video_proj", "face_pooling") else fresh
        assert np.array_equal(v, src[p]), f"phase 2 start: {p} not taken from the expected phase"
    job3, _, _ = phase_runs["phase3"]
    start3 = _flat(_initial(job3))
    p2 = _flat(J.load_for_inference(str(phase_runs["phase2"][2]))[1])
    for p, v in start3.items():
        assert np.array_equal(v, p2[p]), p   # phase 3 starts from phase 2 (LoRA: still its frozen init)


def test_wrong_phase_or_preset_checkpoint_names_the_mismatch(phase_runs):
    _, _, wd1a = phase_runs["phase1a"]
    with pytest.raises(ckpt_lib.CheckpointMismatchError, match="phase: checkpoint has 'phase1a', expected 'phase1b'"):
        _run(tiny_job("phase1b"), wd1a)
    job = tiny_job("phase2")
    bad = J.PhaseJob(**{**job.__dict__, "preset": "nano_emox", "init_from": (str(wd1a),)})
    with pytest.raises(ckpt_lib.CheckpointMismatchError, match="preset: checkpoint has 'tiny', expected 'nano_emox'"):
        J.overlay_from(str(wd1a), {}, {}, {}, bad)


def test_same_losses_on_1_and_8_devices_and_exact_resume_on_another_mesh(tmp_path):
    job = tiny_job("phase1a", steps=4)
    one = shd.make_mesh((1, 1, 1), jax.devices()[:1])
    ref = _run(job, tmp_path / "one", mesh=one).losses[:3]
    fsdp = _run(job, tmp_path / "fsdp", mesh=shd.make_mesh((1, 8, 1)))
    mixed = _run(job, tmp_path / "mixed", mesh=shd.make_mesh((2, 2, 2)))
    np.testing.assert_allclose(fsdp.losses[:3], ref, rtol=MESH_RTOL)
    np.testing.assert_allclose(mixed.losses[:3], ref, rtol=MESH_RTOL)
    # Stop after 2 steps (as SIGTERM does), resume on the same mesh: bitwise the uninterrupted losses.
    part = _run(job, tmp_path / "resume", mesh=shd.make_mesh((1, 8, 1)), stop_after=2)
    assert part.stopped and part.final_step == 2
    rest = _run(job, tmp_path / "resume", mesh=shd.make_mesh((1, 8, 1)))
    assert rest.losses == fsdp.losses[2:], (rest.losses, fsdp.losses)
    # ... and restored onto a different mesh shape.
    part = _run(job, tmp_path / "remesh", mesh=shd.make_mesh((1, 8, 1)), stop_after=2)
    rest = _run(job, tmp_path / "remesh", mesh=shd.make_mesh((2, 2, 2)))
    np.testing.assert_allclose(rest.losses, fsdp.losses[2:], rtol=MESH_RTOL)


def test_nan_loss_skips_counts_and_stops(tmp_path):
    job = tiny_job("phase1a", steps=6, max_consecutive_nan=3)
    mesh = shd.make_mesh((1, 8, 1))
    good = _run(J.PhaseJob(**{**job.__dict__, "loop": job.loop.__class__(**{**job.loop.__dict__, "steps": 1})}),
                tmp_path / "nan", mesh=mesh)
    before = _flat(J.load_for_inference(str(tmp_path / "nan"))[1])
    # Steps 2.. see NaN audio: each update is skipped (params unchanged), counted, and the 3rd in a row stops.
    with pytest.raises(loop.NonFiniteLossError, match="non-finite for 3 consecutive steps"):
        loop.train_phase(job, tmp_path / "nan", mesh=mesh, log_fn=lambda s: None,
                         batch_source=lambda s: synthetic_batch(job, s, nan_audio=True))
    assert np.isfinite(good.losses[0])
    # The last finalised checkpoint is still the good one (nothing NaN was saved).
    after = _flat(J.load_for_inference(str(tmp_path / "nan"))[1])
    for p in before:
        assert np.array_equal(before[p], after[p])
