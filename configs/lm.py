"""Config of the (temporary) LM main job: train the Qwen2 decoder on the shipped text corpus.

``--config=configs/lm.py:tiny`` (default) or ``:qwen2_5_1_5b``; override any key on the command line, e.g.
``--config.optim.lr=1e-3 --config.loop.steps=50 --config.mesh.shape="(2,2,2)"``.

Sections: ``model`` (every ``Qwen2Config`` field), ``optim`` (``OptimConfig``), ``mesh`` (``MeshConfig``),
``loop`` (``LoopConfig``), ``tokenizer`` ("tiny" or a tokenizer.json path/dir), ``sample`` (end-of-run
generation). ``build(config)`` validates everything and returns typed objects; errors name the key.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections

from configs import common
from emox_jax.config_utils import ConfigError, from_config
from emox_jax.models.qwen2 import Qwen2Config

PRESETS = ("tiny", "qwen2_5_1_5b")
SECTIONS = ("preset", "model", "optim", "mesh", "loop", "tokenizer", "sample")


@dataclasses.dataclass(frozen=True)
class SampleConfig:
    """The short generation printed at the end of the job."""

    prompt: str = "###Human: <FaceHere> What emotion does the person show? ###Assistant:"
    max_new_tokens: int = 24
    temperature: float = 0.0  # 0 = greedy
    top_k: int = 0
    top_p: float = 1.0
    stop_strings: tuple[str, ...] = ("###",)

    def validate(self) -> None:
        if self.max_new_tokens <= 0 or self.temperature < 0 or self.top_k < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"bad sample settings {self}")


@dataclasses.dataclass(frozen=True)
class LMJob:
    """The validated, typed form of the config."""

    preset: str
    model: Qwen2Config
    optim: Any  # OptimConfig
    mesh: common.MeshConfig
    loop: common.LoopConfig
    tokenizer: str
    sample: SampleConfig


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    words = common.parse_arg(arg, {"preset": PRESETS}, {"preset": "tiny"})
    preset = words["preset"]
    c = ml_collections.ConfigDict()
    c.preset = preset
    if preset == "tiny":
        c.model = common.dataclass_section(Qwen2Config.tiny())
        c.tokenizer = "tiny"
        # About 1-2 minutes on 2 idle CPU cores; lr peaks after 30 steps and decays to 10% by the end.
        c.optim = common.optim_section(lr=3e-3, min_lr=3e-4, warmup_steps=30, total_steps=300, weight_decay=0.05,
                                       grad_clip_norm=1.0)
        c.loop = common.loop_section(batch_size=8, seq_len=64, steps=300, log_every=25, ckpt_every=100,
                                     workdir="runs/lm_tiny")
    else:
        # The real Qwen2.5-1.5B shapes (an accelerator job: bf16 compute, fp32 master params, remat).
        c.model = common.dataclass_section(Qwen2Config.qwen2_5_1_5b(dtype="bfloat16", remat_policy="dots_no_batch"))
        c.tokenizer = ""  # path to Qwen2.5's tokenizer.json (or its directory); required for this preset
        c.optim = common.optim_section(lr=1e-4, min_lr=1e-5, warmup_steps=200, total_steps=2000,
                                       weight_decay=0.05, grad_clip_norm=1.0)
        c.loop = common.loop_section(batch_size=8, seq_len=2048, steps=2000, log_every=10, ckpt_every=500,
                                     workdir="runs/lm_qwen2_5_1_5b")
    c.mesh = common.mesh_section((1, -1, 1))
    c.sample = common.dataclass_section(SampleConfig())
    return common.lock(c)


def build(config: ml_collections.ConfigDict, tokenizer_vocab_size: int | None = None,
          num_devices: int | None = None) -> LMJob:
    """Validate ``config`` into an ``LMJob``. With ``tokenizer_vocab_size`` / ``num_devices`` also check that the
    tokenizer fits the model's vocabulary and that the batch divides over the mesh."""
    from emox_jax.sharding import resolve_mesh_shape

    common.check_sections(config, SECTIONS)
    if config.preset not in PRESETS:
        raise ConfigError(f"config.preset={config.preset!r} not in {PRESETS}")
    job = LMJob(preset=config.preset,
                model=from_config(Qwen2Config, config.model, where="model"),
                optim=common.build_optim_config(config.optim),
                mesh=common.build_mesh_config(config.mesh),
                loop=common.build_loop_config(config.loop),
                tokenizer=str(config.tokenizer),
                sample=from_config(SampleConfig, config.sample, where="sample"))
    if not job.tokenizer:
        raise ConfigError("config.tokenizer is empty: give 'tiny' or the path of a Qwen tokenizer.json")
    if job.optim.total_steps < job.loop.steps:
        raise ConfigError(f"optim.total_steps={job.optim.total_steps} is smaller than loop.steps={job.loop.steps}: "
                          "the schedule would end before training does")
    if job.loop.seq_len > job.model.max_position_embeddings:
        raise ConfigError(f"loop.seq_len={job.loop.seq_len} exceeds model.max_position_embeddings="
                          f"{job.model.max_position_embeddings}")
    if tokenizer_vocab_size is not None and tokenizer_vocab_size > job.model.vocab_size:
        raise ConfigError(f"tokenizer {job.tokenizer!r} has {tokenizer_vocab_size} tokens but model.vocab_size="
                          f"{job.model.vocab_size}: token ids would index past the embedding table")
    if num_devices is not None:
        try:
            shape = resolve_mesh_shape(job.mesh.shape, num_devices)
        except ValueError as e:
            raise ConfigError(f"mesh.shape: {e}") from None
        common.check_batch_divisible(job.loop.batch_size, shape)
    return job
