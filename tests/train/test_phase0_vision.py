"""Phase 0, vision: the drawn-face corpus, the expression probe's training, and how its towers enter the base model."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import linen as nn
from flax import traverse_util

from configs.p2e import get_config
from emox_jax.models.nano_emox import abstract_params
from emox_jax.train.p2e_job import abstract_boxed, build_job, load_params
from emox_jax.train.phase0 import write_base
from emox_jax.train.phase0_vision import FACE_CLASSES, expression_accuracy, face_corpus, face_labels, pretrain_vision


def _model():
    return build_job(get_config("phase1b,tiny")).model


def test_face_corpus_is_deterministic_labelled_and_separate_per_seed():
    x, y = face_corpus(14, 5, num_frames=8, size=32)
    assert x.shape == (14, 8, 32, 32, 3) and x.dtype == np.uint8 and y.shape == (14,)
    assert y.min() >= 0 and y.max() < len(FACE_CLASSES)
    x2, y2 = face_corpus(14, 5, num_frames=8, size=32)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    x3, _ = face_corpus(14, 6, num_frames=8, size=32)
    assert not np.array_equal(x, x3)
    # A turned-away head and a shown expression look different (the labels describe the pixels).
    if (y == FACE_CLASSES.index("absent")).any() and (y != FACE_CLASSES.index("absent")).any():
        assert not np.array_equal(x[y == FACE_CLASSES.index("absent")][0], x[y != FACE_CLASSES.index("absent")][0])
    assert face_labels(["happy", "absent"]).tolist() == [FACE_CLASSES.index("happy"), len(FACE_CLASSES) - 1]
    with pytest.raises(ValueError, match="unknown face cues"):
        face_labels(["joyful"])


@pytest.mark.slow
def test_pretrain_vision_learns_and_its_towers_drop_into_the_base_model(tmp_path):
    model = _model()
    x, y = face_corpus(32, 1, num_frames=8, size=32)
    params, losses = pretrain_vision(model, x, y, steps=24, lr=5e-3, batch_size=16, log=lambda s: None)
    assert len(losses) == 24 and np.mean(losses[-5:]) < np.mean(losses[:5])
    acc = expression_accuracy(model, params, x, y)
    assert set(acc) == {"clip", "face"} and acc["clip"] > 1.5 / len(FACE_CLASSES)   # fits its training faces

    # The towers have exactly NanoEmoX's clip / face_encoder sub-trees, so write_base takes them as they are.
    ref = traverse_util.flatten_dict(jax.tree.map(lambda a: a.shape,
                                                  nn.meta.unbox(abstract_params(model, batch=1, length=64))))
    towers = {"clip": params["clip"], "face_encoder": params["face_encoder"]}
    got = traverse_util.flatten_dict(jax.tree.map(lambda a: a.shape, towers))
    assert got == {k: v for k, v in ref.items() if k[0] in towers}
    write_base(model, None, tmp_path / "base", "tiny", extra=towers)
    base = load_params(str(tmp_path / "base"), nn.meta.unbox(abstract_boxed(model)))
    flat = traverse_util.flatten_dict(towers)
    for k, v in traverse_util.flatten_dict(base).items():
        if k in flat:
            assert np.array_equal(np.asarray(v), np.asarray(flat[k])), k
    with pytest.raises(ValueError, match=r"\['heads'\] are not NanoEmoX sub-trees"):
        write_base(model, None, tmp_path / "bad", "tiny", extra={"heads": {}})
