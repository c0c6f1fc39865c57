"""NanoEmoX: parameter counts of the real preset (eval_shape, nothing allocated), per-phase trainable counts,
placeholder splicing, and that unused branches are not traced."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from flax import traverse_util

from configs import nano_emox as presets
from configs.p2e import TRAINABLE
from emox_jax.models.nano_emox import NanoEmoX, abstract_params, dummy_inputs
from emox_jax.models.splice import splice_rows
from emox_jax.train.p2e_step import count, path_of, split_params

BACKBONES_SPEC = 2_249_072_440   # reference-architecture §6: LLM + CLIP vision + HuBERT + Swin-B
TRAINABLE_SPEC = {"phase1a": 20_905_472, "phase1b": 22_572_800, "phase2": 50_835_203, "phase3": 69_299_971}


@pytest.fixture(scope="module")
def real_shapes():
    return nn.meta.unbox(abstract_params(presets.nano_emox()))


@pytest.mark.slow
def test_backbone_count_of_the_real_preset(real_shapes):
    flat = {path_of(k): v for k, v in traverse_util.flatten_dict(real_shapes).items()}
    n = lambda pred: sum(int(np.prod(v.shape)) for p, v in flat.items() if pred(p))  # noqa: E731
    backbones = n(lambda p: p.split("/")[0] in ("decoder", "clip", "hubert") and "lora_" not in p) \
        + n(lambda p: p.startswith("face_encoder/swin/"))
    assert abs(backbones - BACKBONES_SPEC) / BACKBONES_SPEC < 0.005, backbones
    assert n(lambda p: p.startswith("decoder/") and "lora_" not in p) == 1_543_714_304
    assert n(lambda p: "lora_" in p) == 18_464_768


@pytest.mark.slow
@pytest.mark.parametrize("phase", sorted(TRAINABLE_SPEC))
def test_trainable_count_per_phase(real_shapes, phase):
    trainable, frozen = split_params(real_shapes, TRAINABLE[phase])
    assert count(trainable) == TRAINABLE_SPEC[phase]
    assert count(trainable) + count(frozen) == count(real_shapes)


def test_splice_rows_writes_at_starts_and_skips_minus_one():
    e = jnp.zeros((3, 10, 2))
    t = jnp.arange(3 * 4 * 2, dtype=jnp.float32).reshape(3, 4, 2) + 1
    out = np.asarray(jax.jit(splice_rows)(e, t, jnp.asarray([0, 5, -1])))
    np.testing.assert_array_equal(out[0, :4], t[0])
    np.testing.assert_array_equal(out[1, 5:9], t[1])
    assert not out[0, 4:].any() and not out[1, :5].any() and not out[1, 9:].any() and not out[2].any()
    with pytest.raises(ValueError, match="must agree on B and D"):
        splice_rows(e, jnp.zeros((3, 4, 3)), jnp.zeros(3, jnp.int32))


@pytest.mark.slow
def test_unused_branches_are_not_traced():
    cfg = presets.tiny()
    inputs = dummy_inputs(cfg, batch=2, length=64, num_clips=2, clip_samples=1600)
    inputs.pop("modalities")
    # Audio-only (phase 1a): init creates, and apply needs, only the decoder, HuBERT and the audio adapter.
    audio_only = nn.meta.unbox(jax.eval_shape(
        lambda r: NanoEmoX(cfg).init(r, **inputs, modalities=("audio",)), jax.random.key(0))["params"])
    assert set(audio_only) == {"decoder", "hubert", "audio_qformer", "audio_proj"}
    out = jax.eval_shape(lambda p: NanoEmoX(cfg).apply({"params": p}, **inputs, modalities=("audio",)), audio_only)
    assert out.shape == (2, 64, cfg.llm.vocab_size) and out.dtype == jnp.float32
    with pytest.raises(Exception, match="clip|video_qformer|face"):
        jax.eval_shape(lambda p: NanoEmoX(cfg).apply({"params": p}, **inputs, modalities=("frame",)), audio_only)


def test_preset_validation_names_the_field():
    bad = presets.tiny().replace(frame_tokens=7)
    with pytest.raises(ValueError, match="video_qformer.num_queries 8 != frame_tokens 7"):
        bad.validate()
