"""ClipVision: shapes, depth slicing, input checks, preprocessing, sharding (parity lives in tests/convert)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from emox_jax.models.clip_vit import CLIP_MEAN, CLIP_STD, ClipVision, ClipVisionConfig, clip_preprocess
from emox_jax.sharding import LOGICAL_AXIS_RULES, batch_sharding, logical_to_shardings, make_mesh

CFG = ClipVisionConfig.tiny()


@pytest.fixture(scope="module")
def tiny_params():
    x = jnp.zeros((1, CFG.image_size, CFG.image_size, 3))
    return nn.unbox(jax.jit(lambda: ClipVision(CFG).init(jax.random.key(0), x))()["params"])


def _pixels(b, seed=0):
    return np.random.default_rng(seed).standard_normal((b, CFG.image_size, CFG.image_size, 3)).astype(np.float32)


def test_vit_l14_param_count_matches_spec():
    # reference-architecture §6: embeddings 866,304 + pre-LN + 24 x 12,596,224 + post-LN = 303,179,776.
    cfg = ClipVisionConfig.vit_l14()
    x = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)
    abstract = jax.eval_shape(lambda x: ClipVision(cfg).init(jax.random.key(0), x), x)
    leaves = jax.tree.leaves(nn.unbox(abstract["params"]))
    assert sum(int(np.prod(a.shape)) for a in leaves) == 303_179_776
    assert nn.unbox(abstract["params"])["layers"]["fc1"]["kernel"].shape == (24, 1024, 4096)
    # every param carries logical axis names, the stacked ones led by 'layers'
    specs = jax.tree.leaves(nn.get_partition_spec(abstract["params"]),
                            is_leaf=lambda s: isinstance(s, jax.sharding.PartitionSpec))
    assert all(s is not None for s in specs)
    assert abstract["params"]["layers"]["fc1"]["kernel"].names == ("layers", "embed", "mlp")


def test_only_needed_blocks_are_computed(tiny_params):
    model = ClipVision(CFG)

    def scan_lengths(layers):
        jaxpr = jax.make_jaxpr(lambda p, x: model.apply({"params": p}, x, layers=layers))(tiny_params, _pixels(1))
        return [e.params["length"] for e in jaxpr.jaxpr.eqns if e.primitive.name == "scan"]

    assert scan_lengths((2,)) == [2]
    assert scan_lengths((1, 3)) == [3]
    assert scan_lengths((0,)) == []  # embeddings only: no block runs
    # and the shallow call returns the same state as a full-depth call
    shallow = jax.jit(lambda p, x: model.apply({"params": p}, x, layers=(2,)))(tiny_params, _pixels(2))
    full = jax.jit(lambda p, x: model.apply({"params": p}, x, layers=(2, 4)))(tiny_params, _pixels(2))
    np.testing.assert_allclose(shallow["cls"][2], full["cls"][2], atol=1e-6)
    assert set(full["cls"]) == {2, 4} and "tokens" not in full


def test_outputs_tokens_pooled_and_clip_layout(tiny_params):
    model = ClipVision(CFG)
    clips = np.random.default_rng(1).standard_normal((2, 3, 32, 32, 3)).astype(np.float32)
    out = jax.jit(lambda p, x: model.apply({"params": p}, x, layers=(1, 3), return_tokens=True, pooled=True))(
        tiny_params, clips)
    assert out["cls"][3].shape == (2, 3, 64) and out["tokens"][1].shape == (2, 3, CFG.num_tokens, 64)
    assert out["pooled"].shape == (2, 3, 64) and out["cls"][3].dtype == jnp.float32
    np.testing.assert_allclose(out["tokens"][3][:, :, 0], out["cls"][3], atol=0)
    # [B, T, ...] clips give exactly the per-frame result of the flattened batch
    flat = jax.jit(lambda p, x: model.apply({"params": p}, x, layers=(3,)))(tiny_params, clips.reshape(6, 32, 32, 3))
    np.testing.assert_allclose(out["cls"][3].reshape(6, 64), flat["cls"][3], atol=1e-5)


@pytest.mark.parametrize("shape,fragment", [((2, 32, 32, 1), "got shape (2, 32, 32, 1)"),
                                            ((2, 28, 32, 3), "got shape (2, 28, 32, 3)"),
                                            ((2, 3, 32, 32), "got shape (2, 3, 32, 32)"),
                                            ((32, 32, 3), "got shape (32, 32, 3)")])
def test_wrong_frame_shape_names_expected_and_got(tiny_params, shape, fragment):
    with pytest.raises(ValueError, match=r"\[B, 32, 32, 3\]") as e:
        ClipVision(CFG).apply({"params": tiny_params}, jnp.zeros(shape))
    assert fragment in str(e.value)


def test_bad_layer_request_and_config():
    with pytest.raises(ValueError, match=r"outside 0\.\.4"):
        jax.eval_shape(lambda x: ClipVision(CFG).init(jax.random.key(0), x, layers=(5,)), _pixels(1))
    with pytest.raises(ValueError, match="not a multiple of patch_size"):
        ClipVisionConfig.tiny(image_size=30).validate()


@pytest.mark.slow
def test_clip_preprocess_matches_hf_image_processor():
    from transformers import CLIPImageProcessor

    rng = np.random.default_rng(0)
    proc = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    # Already at size (the reference's case: decord resized to 224x224): exact.
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    ref = proc(images=img, return_tensors="np")["pixel_values"][0].transpose(1, 2, 0)
    ours = np.asarray(clip_preprocess(img, image_size=32))
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    np.testing.assert_allclose(np.asarray(clip_preprocess(img.astype(np.float32), 32)), ref, atol=1e-5)
    # Other sizes: shortest side -> 32 then centre crop. A smooth image keeps PIL's uint8 rounding and our
    # float bicubic within a small fraction of one std.
    yy, xx = np.meshgrid(np.linspace(0, 1, 48), np.linspace(0, 1, 80), indexing="ij")
    smooth = np.stack([yy * 255, xx * 255, (yy + xx) * 127], -1).astype(np.uint8)
    ref = proc(images=smooth, return_tensors="np")["pixel_values"][0].transpose(1, 2, 0)
    ours = np.asarray(clip_preprocess(smooth, image_size=32))
    assert ours.shape == ref.shape == (32, 32, 3)
    assert np.abs(ours - ref).mean() < 0.03
    with pytest.raises(ValueError, match=r"\[\.\.\., H, W, 3\]"):
        clip_preprocess(np.zeros((4, 4, 4)))
    assert len(CLIP_MEAN) == len(CLIP_STD) == 3


@pytest.mark.slow
def test_sharded_features_match_single_device(tiny_params):
    assert jax.device_count() >= 8, "conftest sets 8 fake CPU devices"
    model = ClipVision(CFG)
    x = _pixels(8, seed=3)
    fn = lambda p, x: model.apply({"params": p}, x, layers=(1, 3), return_tokens=True)  # noqa: E731
    single = jax.jit(fn)(tiny_params, x)

    mesh = make_mesh((1, 8, 1))
    with jax.set_mesh(mesh), nn.logical_axis_rules(LOGICAL_AXIS_RULES):
        abstract = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
        p_sh = logical_to_shardings(abstract, mesh)["params"]
        params = jax.device_put(tiny_params, p_sh)
        assert params["layers"]["fc1"]["kernel"].sharding.spec[1] == "fsdp"
        xs = jax.device_put(x, batch_sharding(mesh, 4))
        sharded = jax.jit(fn, in_shardings=(p_sh, batch_sharding(mesh, 4)))(params, xs)
    for i in (1, 3):
        np.testing.assert_allclose(sharded["cls"][i], single["cls"][i], atol=1e-5)
        np.testing.assert_allclose(sharded["tokens"][i], single["tokens"][i], atol=1e-5)
