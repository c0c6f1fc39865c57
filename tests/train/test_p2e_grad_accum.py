"""Gradient accumulation: the same global batch split into 2 microbatches gives the loss and the update of the
whole batch (the loss is a sum over supervised tokens divided by their count, so the split is exact up to fp32
summation order). Dropout is off so both runs see the same function."""

from __future__ import annotations

import numpy as np
import pytest
from flax import traverse_util

from emox_jax import sharding as shd
from emox_jax.train import loop
from emox_jax.train import p2e_job as J
from tests.train.p2e_testlib import SEQ, synthetic_batch

pytestmark = pytest.mark.slow


def _job(grad_accum: int):
    from configs.p2e import get_config

    c = get_config("phase1a,tiny")
    c.loop.steps, c.loop.batch_size, c.loop.log_every, c.loop.ckpt_every = 2, 8, 1, 0
    c.loop.progress, c.loop.async_ckpt, c.loop.grad_accum = False, False, grad_accum
    c.optim.warmup_steps, c.optim.total_steps = 1, 2
    c.data.batch_size, c.data.max_length, c.data.length_buckets = 8, SEQ, (SEQ,)
    c.model.audio_qformer.hidden_dropout = c.model.audio_qformer.attention_dropout = 0.0
    c.model.audio_proj.dropout = 0.0
    return J.build_job(c)


def test_two_microbatches_equal_one_batch(tmp_path):
    mesh = shd.make_mesh((1, 1, 1), __import__("jax").devices()[:1])
    runs = {}
    for n in (1, 2):
        job = _job(n)
        res = loop.train_phase(job, tmp_path / f"accum{n}", batch_source=lambda s, job=job: synthetic_batch(job, s),
                               mesh=mesh, log_fn=lambda s: None)
        params = J.load_for_inference(str(tmp_path / f"accum{n}"))[1]
        runs[n] = (res.losses, {k: np.asarray(v) for k, v in traverse_util.flatten_dict(params["audio_proj"]).items()})
    np.testing.assert_allclose(runs[2][0], runs[1][0], rtol=1e-5)
    for k, v in runs[1][1].items():
        np.testing.assert_allclose(runs[2][1][k], v, rtol=1e-4, atol=1e-6, err_msg=str(k))
    assert not np.allclose(runs[1][0][0], runs[1][0][1])   # the first update changed the loss
