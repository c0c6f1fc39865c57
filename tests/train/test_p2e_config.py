"""configs/p2e.py: phases, trainable groups, schedule that really warms up, mixture weights, validation."""

from __future__ import annotations

import numpy as np
import pytest

from configs import p2e
from emox_jax.config_utils import ConfigError
from emox_jax.train.optim import lr_schedule
from emox_jax.train.p2e_job import build_job


@pytest.mark.parametrize("phase", p2e.PHASES)
def test_real_phase_configs_build(phase):
    job = build_job(p2e.get_config(phase))
    assert job.preset == "nano_emox" and job.data.max_length == 1024 and job.model.llm.lora_rank == 16
    assert (job.optim.b1, job.optim.b2, job.optim.eps, job.optim.weight_decay) == (0.9, 0.999, 1e-8, 0.05)
    assert job.trainable_regexes == p2e.TRAINABLE[phase]
    assert job.loop.dtype == "bfloat16" and job.mesh_shape == (1, -1, 1)


def test_modalities_follow_the_phase_datasets():
    mods = {p: build_job(p2e.get_config(f"{p},tiny")).modalities for p in p2e.PHASES}
    assert mods == {"phase1a": ("audio",), "phase1b": ("face", "frame"),
                    "phase2": ("multi", "audio", "face", "frame"), "phase3": ("multi", "audio", "face", "frame")}


def test_schedule_warms_up_then_cosine_to_min():
    o = build_job(p2e.get_config("phase1a")).optim
    s = lr_schedule(o)
    assert np.isclose(float(s(0)), 1e-6) and np.isclose(float(s(o.warmup_steps)), 3e-4)
    assert float(s(o.warmup_steps // 2)) < 3e-4 and np.isclose(float(s(o.total_steps)), 1e-4)


def test_phase3_mixture_ratios_are_sampling_weights():
    job = build_job(p2e.get_config("phase3"))
    w = {d.name: d.weight for d in job.data.datasets}
    assert w == {"mer_caption_plus": 0.55, "merr_fine": 0.05, "mintrec": 0.02, "mintrec2": 0.03, "avamerg": 0.35}
    assert job.data.mixture == "weights" and job.data.mix_unit == "example"   # the paper's per-example mix
    tiny = build_job(p2e.get_config("phase3,tiny")).data
    assert tiny.mix_unit == "batch" and len(tiny.datasets) == 6   # one task per batch (configs/p2e.py)


def test_all_chains_the_phases():
    c = p2e.get_config("all,tiny")
    assert list(c.phases) == list(p2e.PHASES) and c.pretrain_lm.steps > 0
    # tiny: phase 0 also pretrains the vision towers, and the trainer caches frozen features; the real preset
    # arrives with pretrained weights and leaves the cache off (0.4 MB per clip).
    assert c.pretrain_vision.steps > 0 and c.phases.phase3.loop.frozen_feature_cache_mb > 0
    real = p2e.get_config("all")
    assert real.pretrain_vision.steps == 0 and real.phases.phase3.loop.frozen_feature_cache_mb == 0
    assert p2e.INIT_FROM == {"phase1a": (), "phase1b": (), "phase2": ("phase1a", "phase1b"), "phase3": ("phase2",)}


def test_bad_configs_name_the_key():
    with pytest.raises(ConfigError, match="unknown word 'phase4'"):
        p2e.get_config("phase4,tiny")
    c = p2e.get_config("phase1a,tiny")
    c.data.frame_tokens = 5
    with pytest.raises(ConfigError, match="data.frame_tokens=5 but the model makes 8 frame tokens"):
        build_job(c)
    c = p2e.get_config("phase1a,tiny")
    c.loop.grad_accum = 3
    with pytest.raises(ConfigError, match="not divisible by grad_accum 3"):
        build_job(c)


def test_tiny_main_mode_prompts_fit_max_length_uncut():
    """Every task's all-branch EmoSynth prompt + answer fits the tiny preset's max_length without truncation
    (with the old tokenizer ERG needed ~570 tokens and truncation cut the words, the strongest cue), and the
    phases 1-2 tasks fit the small bucket."""
    from data_pipelines import prompts
    from data_pipelines.emosynth import iter_examples
    from data_pipelines.tokenize import TokenizeConfig, tokenize_prompt
    from emox_jax.tokenizer import tiny_tokenizer

    c = p2e.get_config("all,tiny").phases["phase3"]
    tok = tiny_tokenizer()
    cfg = TokenizeConfig(max_length=4096, frame_tokens=c.data.frame_tokens, face_tokens=c.data.face_tokens,
                         audio_tokens=c.data.audio_tokens, multi_tokens=c.data.multi_tokens)
    rng = np.random.default_rng(0)
    longest = {}
    for r in iter_examples(60, seed=11, media=False):
        for task, lt in p2e.TINY_TASKS.items():
            spec = prompts.build_prompt(r, lt, p2e.MAIN, prompts.PromptConfig(), rng)
            n = len(tokenize_prompt(spec, tok, cfg)["input_ids"])
            longest[task] = max(longest.get(task, 0), n)
    assert max(longest.values()) <= c.data.max_length, longest
    assert max(longest[t] for t in ("msa", "mer", "mir")) <= min(c.data.length_buckets), longest
