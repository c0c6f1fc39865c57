"""The shipped phase-0 base (``emox_jax/assets/tiny_base``, ``emox_jax/train/tiny_base.py``): current for this
repository, shaped like the tiny model, what phase 0 produces, and used by the curriculum only on a match."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from flax import linen as nn
from flax import traverse_util

from configs.p2e import PHASES, get_config
from emox_jax.models.nano_emox import abstract_params
from emox_jax.train import curriculum, tiny_base
from emox_jax.train.p2e_job import abstract_boxed, build_job, load_params
from launch.train import phase_inputs


@pytest.fixture(scope="module")
def setup():
    config = get_config("all,tiny")
    job = build_job(config.phases[PHASES[0]])
    tok, _ = phase_inputs(job)
    return config, job, tok


def _shipped():
    with np.load(tiny_base.ASSET_DIR / tiny_base.PARAMS_FILE) as z:
        flat = {tuple(k.split("/")): np.asarray(z[k]) for k in z.files}
    return flat, json.loads((tiny_base.ASSET_DIR / tiny_base.META_FILE).read_text())


def test_shipped_base_is_current(setup):
    config, job, tok = setup
    parts = tiny_base.fingerprint_parts(config, job, curriculum.phase0_text(config, job, tok))
    meta = _shipped()[1]
    stale = sorted(k for k in parts if meta["fingerprint_parts"].get(k) != parts[k])
    assert meta["fingerprint"] == tiny_base.fingerprint(parts), (
        f"emox_jax/assets/tiny_base is stale (differs in {stale}: a phase-0 setting or PHASE0_VERSION, the "
        "EmoSynth text, the tokenizer, a tiny model config or the face painter changed): rebuild it with "
        "`python -m launch.build_tiny_base`")


def test_shipped_base_is_the_tiny_models_pretrained_towers(setup):
    _, job, _ = setup
    flat, meta = _shipped()
    ref = traverse_util.flatten_dict(jax.tree.map(lambda a: (a.shape, a.dtype),
                                                  nn.meta.unbox(abstract_params(job.model, batch=1, length=64))))
    want = {k: v for k, v in ref.items() if k[0] in ("clip", "face_encoder")
            or (k[0] == "decoder" and not any("lora" in p for p in k))}
    assert {k: (v.shape, v.dtype) for k, v in flat.items()} == want
    assert all(np.isfinite(v).all() for v in flat.values())
    # It is a trained phase 0, not an init: the LM's loss fell and the towers read expressions above chance (1/7).
    losses = meta["lm_losses"]
    assert len(losses) == int(get_config("all,tiny").pretrain_lm.steps) and np.mean(losses[-10:]) < 0.5 * losses[0]
    assert meta["expression_accuracy"]["clip"] > 2 / 7 and meta["expression_accuracy"]["face"] > 1.5 / 7


def test_curriculum_writes_the_shipped_base_and_only_on_a_match(setup, tmp_path):
    config, job, tok = setup
    said = []
    curriculum._phase0(config, job, tok, tmp_path / "base", said.append)
    assert any("using the shipped base" in s for s in said), said
    base = traverse_util.flatten_dict(load_params(str(tmp_path / "base"), nn.meta.unbox(abstract_boxed(job.model))))
    flat, _ = _shipped()
    for k, v in flat.items():
        assert np.array_equal(np.asarray(base[k]), v), k
    # Another phase-0 configuration, text or painter never reuses it, and the message names what differs.
    parts = tiny_base.fingerprint_parts(config, job, ["a line"])
    said.clear()
    assert tiny_base.load(dict(parts, lm_text="other"), said.append) is None
    assert "built for another phase 0 (differs in: " in said[0] and "lm_text" in said[0]
    assert tiny_base.load(parts, said.append, directory=tmp_path / "none") is None and "no shipped base" in said[1]
    other = get_config("all,tiny")
    other.pretrain_lm.steps = 299
    assert tiny_base.fingerprint_parts(other, job, ["a line"])["settings"] != parts["settings"]
    assert tiny_base.fingerprint_parts(config, job, ["other line"])["lm_text"] != parts["lm_text"]
    # What phase 0 does not use (LoRA, remat, compute dtype of the decoder) leaves the fingerprint alone.
    import dataclasses

    m = job.model.with_remat("full")
    relaxed = dataclasses.replace(job, model=dataclasses.replace(m, llm=m.llm.replace(lora_rank=8)))
    assert tiny_base.fingerprint_parts(config, relaxed, ["a line"]) == parts


def test_save_load_round_trip_and_damaged_bases(tmp_path):
    dec = {"layer": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}}
    vision = {"clip": {"w": np.ones(4, np.float32)}}
    parts = {"code": "1", "lm_text": "t"}
    tiny_base.save(tmp_path, dec, vision, parts, {"lm_losses": [2.0, 1.0]})
    got = tiny_base.load(parts, lambda s: None, directory=tmp_path)
    assert got is not None
    d, v, losses, meta = got
    assert np.array_equal(d["layer"]["kernel"], dec["layer"]["kernel"]) and np.array_equal(v["clip"]["w"], np.ones(4))
    assert losses == [2.0, 1.0] and meta["fingerprint_parts"] == parts
    assert not list(tmp_path.glob("*.tmp*"))   # written under temporary names, then renamed
    model = {"decoder": {"layer": {"kernel": np.zeros((2, 3))}}, "clip": {"w": np.zeros(5)}}
    assert tiny_base.mismatched_shapes(d, v, model) == ["clip/w"]
    said = []
    # An altered params file (or one a crashed build left beside an old meta) is refused, not loaded.
    np.savez(tmp_path / tiny_base.PARAMS_FILE, **{"decoder/layer/kernel": np.zeros((2, 3), np.float32)})
    assert tiny_base.load(parts, said.append, directory=tmp_path) is None and "altered or half-written" in said[-1]
    (tmp_path / tiny_base.META_FILE).write_text("{not json")
    assert tiny_base.load(parts, said.append, directory=tmp_path) is None and "unreadable" in said[-1]


@pytest.mark.slow
def test_build_script_writes_a_base_the_curriculum_accepts(tmp_path, monkeypatch, setup):
    """``launch.build_tiny_base`` end to end at a few steps: what it writes matches its own configuration."""
    import configs.p2e as p2e
    from launch import build_tiny_base
    from launch.quickstart import fast_overrides

    small = get_config("all,tiny")
    fast_overrides(small)
    small.pretrain_lm.batch_size = small.pretrain_vision.batch_size = 8   # divisible over the 8 test devices
    monkeypatch.setattr(p2e, "get_config", lambda arg: small)
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=0")   # main() leaves a set level alone
    assert build_tiny_base.main(["--out", str(tmp_path)]) == 0
    job = build_job(small.phases[PHASES[0]])
    parts = tiny_base.fingerprint_parts(small, job, curriculum.phase0_text(small, job, setup[2]))
    got = tiny_base.load(parts, lambda s: None, directory=tmp_path)
    assert got is not None and len(got[2]) == int(small.pretrain_lm.steps) and set(got[1]) == {"clip", "face_encoder"}
