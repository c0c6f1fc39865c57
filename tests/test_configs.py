"""LM job config: presets, absl overrides, unknown keys named, inconsistent settings rejected."""

import ml_collections
import pytest
from absl import flags
from ml_collections import config_flags

from configs import common, lm
from emox_jax.config_utils import ConfigError
from emox_jax.models.qwen2 import Qwen2Config


def test_presets_build():
    tiny = lm.build(lm.get_config("tiny"), tokenizer_vocab_size=1024, num_devices=8)
    assert tiny.model == Qwen2Config.tiny() and tiny.tokenizer == "tiny"
    assert lm.build(lm.get_config()).preset == "tiny"  # default preset
    big = lm.get_config("qwen2_5_1_5b")
    big.tokenizer = "/some/qwen/tokenizer.json"
    job = lm.build(big)
    assert (job.model.hidden_size, job.model.num_layers, job.model.vocab_size) == (1536, 28, 151936)
    assert job.model.dtype == "bfloat16" and job.model.param_dtype == "float32"
    assert job.mesh.shape == (1, -1, 1)
    # Warmup really warms up: the schedule starts below the peak.
    assert job.optim.warmup_steps > 0 and job.optim.warmup_init_lr < job.optim.lr


def test_parse_arg():
    choices = {"preset": ("tiny", "nano_emox"), "phase": ("phase1a", "phase3")}
    assert common.parse_arg("phase3,tiny", choices, {"preset": "nano_emox", "phase": "phase1a"}) == \
        {"phase": "phase3", "preset": "tiny"}
    assert common.parse_arg("", choices, {"preset": "tiny"}) == {"preset": "tiny"}
    with pytest.raises(ConfigError, match="'phase9'"):
        common.parse_arg("phase9", choices, {})
    with pytest.raises(ConfigError, match="two presets"):
        common.parse_arg("tiny,nano_emox", choices, {})
    with pytest.raises(ConfigError, match="'huge'"):
        lm.get_config("huge")


def _parse(argv):
    # config_flags reads the overrides from sys.argv unless given `sys_argv`; a private FlagValues keeps the
    # test independent of absl's global FLAGS.
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, flag_values=fv, lock_config=True, sys_argv=argv)
    fv(argv)
    return fv


def test_absl_overrides():
    fv = _parse(["prog", "--config=configs/lm.py:tiny", "--config.optim.lr=0.001", "--config.mesh.shape=(2,2,2)",
                 "--config.optim.trainable_regexes=('.*lora_.*',)"])
    job = lm.build(fv.config)
    assert job.optim.lr == 1e-3 and job.mesh.shape == (2, 2, 2)
    assert job.optim.trainable_regexes == (".*lora_.*",)
    # An override of a key that does not exist is rejected, naming it.
    with pytest.raises(Exception, match="lrr"):
        _parse(["prog", "--config=configs/lm.py:tiny", "--config.optim.lrr=0.001"])


@pytest.mark.parametrize("section,key,value", [
    ("model", "hidden_sise", 64),
    ("optim", "learning_rate", 1e-3),
    ("loop", "batchsize", 4),
    ("mesh", "axes", ("a",)),
    ("sample", "max_tokens", 3),
])
def test_unknown_key_is_named(section, key, value):
    c = lm.get_config("tiny")
    with c.unlocked():
        c[section][key] = value
    with pytest.raises(ConfigError, match=f"{section}.{key}"):
        lm.build(c)


def test_unknown_top_level_key_is_named():
    c = lm.get_config("tiny")
    with c.unlocked():
        c.optimizer = {"lr": 1.0}
    with pytest.raises(ConfigError, match="config.optimizer.*did you mean 'optim'"):
        lm.build(c)


def test_wrong_type_is_named():
    c = lm.get_config("tiny")
    with pytest.raises(TypeError, match="batch_size"):  # ml_collections' own type safety on assignment
        c.loop.batch_size = "eight"
    d = c.to_dict()  # a config built by hand bypasses that; build() still names the field
    d["loop"]["batch_size"] = "eight"
    with pytest.raises(ConfigError, match="loop.batch_size must be int"):
        lm.build(ml_collections.ConfigDict(d))


def _set(c, path, value):
    *parents, leaf = path.split(".")
    node = c
    for p in parents:
        node = node[p]
    node[leaf] = value
    return c


@pytest.mark.parametrize("path,value,kw,match", [
    (None, None, {"tokenizer_vocab_size": 2048}, "2048 tokens but model.vocab_size=1024"),
    ("loop.batch_size", 12, {"num_devices": 8}, r"batch_size=12 is not divisible by data×fsdp = 1×8"),
    ("mesh.shape", (2, 3, 1), {"num_devices": 8}, "mesh.shape"),
    ("loop.steps", 500, {}, "total_steps=300 is smaller than loop.steps=500"),
    ("optim.min_lr", 1.0, {}, "min_lr=1.0 is larger than lr"),
    ("optim.warmup_steps", 300, {}, "warmup_steps"),
    ("model.num_kv_heads", 3, {}, "divisible by num_kv_heads"),
    ("loop.seq_len", 4096, {}, "max_position_embeddings"),
    ("optim.trainable_regexes", ("(",), {}, "bad regex"),
])
def test_inconsistent_config_errors(path, value, kw, match):
    c = lm.get_config("tiny")
    if path:
        _set(c, path, value)
    with pytest.raises(ConfigError, match=match):
        lm.build(c, **kw)
