"""The per-clip frozen-backbone feature cache: same logits and losses as running the backbones in the step,
hits by media content (not by id), the memory cap, and clear errors."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from emox_jax.models.nano_emox import MODALITIES, NanoEmoX, init_params
from emox_jax.train import loop
from emox_jax.train import p2e_job as J
from emox_jax.train.frozen_features import FrozenFeatureCache
from tests.train.p2e_testlib import synthetic_batch, tiny_job


@pytest.fixture(scope="module")
def setup():
    job = tiny_job("phase3")
    params = jax.jit(lambda r: nn.meta.unbox(init_params(job.model, r, batch=1, length=64)))(jax.random.key(0))
    return job, params


def _logits(job, params, b, features=None):
    model = NanoEmoX(job.model)
    starts = {m: jnp.asarray(b[f"{m}_pos"]) for m in MODALITIES}
    f = jax.jit(lambda p, ids, frames, audio, feats: model.apply(
        {"params": p}, ids, frames=frames, audio=audio, starts=starts, modalities=MODALITIES, features=feats))
    return np.asarray(f(params, jnp.asarray(b["input_ids"]), None if features else jnp.asarray(b["frames"]),
                        None if features else jnp.asarray(b["audio"]), features))


def test_cached_features_give_the_same_logits_and_hit_by_media_content(setup):
    job, params = setup
    cache = FrozenFeatureCache(job.model, params, MODALITIES)
    b = synthetic_batch(job, 0)
    out = cache(b)
    assert "frames" not in out and "audio" not in out
    assert out["clip_cls"].shape == (8, 3, 8, 64) and out["face_feat"].shape == (8, 8, 16)
    assert out["hubert_mean"].shape == (8, 4, 4, 64)
    feats = {k: jnp.asarray(out[k]) for k in ("clip_cls", "face_feat", "hubert_mean")}
    np.testing.assert_allclose(_logits(job, params, b, feats), _logits(job, params, b), rtol=1e-5, atol=1e-5)
    assert cache.stats()["misses"] == 3 * 8 and cache.stats()["hits"] == 0

    # The same clips again, shuffled and under other ids: every row is a hit, values unchanged.
    perm = np.arange(8)[::-1]
    again = cache({k: v[perm] for k, v in b.items()})
    assert cache.stats()["hits"] == 3 * 8 and cache.stats()["misses"] == 3 * 8
    for k in feats:
        assert np.array_equal(again[k], out[k][perm])

    # Same ids, other media: a miss (keys are the media bytes), so nothing stale is served.
    other = dict(b, frames=synthetic_batch(job, 1)["frames"])
    changed = cache(other)
    assert cache.stats()["misses"] == 3 * 8 + 2 * 8          # new visual rows; the audio rows are still hits
    assert not np.array_equal(changed["clip_cls"], out["clip_cls"])
    assert np.array_equal(changed["hubert_mean"], out["hubert_mean"])


def test_audio_only_phase_replaces_only_audio_and_the_cap_still_gives_correct_rows(setup):
    job, params = setup
    b = synthetic_batch(job, 2)
    one_row = 4 * 4 * 64 * 4   # hubert_mean row bytes
    cache = FrozenFeatureCache(job.model, params, ("audio",), max_mb=3 * one_row / 2**20)
    host = {k: v for k, v in b.items() if k != "frames"}
    out = cache(host)
    assert set(out) == set(host) - {"audio"} | {"hubert_mean"}
    st = cache.stats()
    assert st["misses"] == 3 and st["uncached"] == 5
    again = cache(host)
    assert np.array_equal(again["hubert_mean"], out["hubert_mean"])   # the 5 recomputed rows agree with the first pass
    assert cache.stats()["hits"] == 3 and cache.stats()["uncached"] == 10
    with pytest.raises(KeyError, match="no 'audio'"):
        cache({k: v for k, v in host.items() if k != "audio"})
    with pytest.raises(ValueError, match=r"frozen backbones \['hubert'\]"):
        FrozenFeatureCache(job.model, {k: v for k, v in params.items() if k != "hubert"}, ("audio",))


@pytest.mark.slow
def test_training_with_the_cache_matches_running_the_backbones(tmp_path):
    """Phase 1b (CLIP + face encoder): 3 steps where step 2 repeats step 0's clips, with and without the cache."""
    job = tiny_job("phase1b", steps=3)
    off = J.PhaseJob(**{**job.__dict__, "loop": dataclasses.replace(job.loop, frozen_feature_cache_mb=0.0)})
    assert job.loop.frozen_feature_cache_mb > 0   # the tiny preset caches

    def source(step):
        return synthetic_batch(job, step % 2)

    logs = []
    on_res = loop.train_phase(job, tmp_path / "on", batch_source=source, log_fn=logs.append)
    off_res = loop.train_phase(off, tmp_path / "off", batch_source=source, log_fn=lambda s: None)
    np.testing.assert_allclose(on_res.losses, off_res.losses, rtol=2e-5)
    assert on_res.losses[2] != on_res.losses[0]   # the params moved between the repeats
    # 2 distinct batches x 8 clips x 2 backbones computed once; step 2's 8 clips x 2 reused.
    assert any("32 computed and kept" in s and "16 reused" in s for s in logs), logs
