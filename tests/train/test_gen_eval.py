"""End-of-phase generation eval: prompts are cut to their longest one before generating, with the same answers."""

import flax.linen as nn
import jax
import numpy as np

from configs.p2e import get_config
from emox_jax.models.nano_emox import init_params
from emox_jax.tokenizer import tiny_tokenizer
from emox_jax.train import gen_eval
from emox_jax.train.p2e_job import build_job
from launch.train import emosynth_records


def test_trim_keeps_every_prompt_and_rounds_up():
    a = {"input_ids": np.ones((2, 384), np.int32), "loss_mask": np.zeros((2, 384), np.int32),
         "frames": np.zeros((2, 8, 4, 4, 3), np.uint8), "audio": np.zeros((2, 384)), "frame_pos": np.ones(2)}
    out = gen_eval.trim_to_prompts(a, 130)
    assert out["input_ids"].shape == (2, 192) and out["loss_mask"].shape == (2, 192)   # 130 -> 3 x 64
    assert out["audio"].shape == (2, 384) and out["frames"].shape == a["frames"].shape  # media untouched
    assert gen_eval.trim_to_prompts(a, 383)["input_ids"].shape == (2, 384)              # never longer
    assert gen_eval.trim_to_prompts(a, 64)["input_ids"].shape == (2, 64)


def test_trimmed_generation_gives_the_untrimmed_answers(monkeypatch):
    job = build_job(get_config("phase3,tiny"))
    tok = tiny_tokenizer()
    test = emosynth_records(30, 7, "test")
    tb = gen_eval.prepare(test, job.data, tok, tasks=["erg"], per_task=3)["erg"]
    assert tb.arrays["input_ids"].shape[1] == 384                     # ERG's bucket
    params = nn.meta.unbox(init_params(job.model, jax.random.key(0)))
    seen, trim = [], gen_eval.trim_to_prompts

    def spy(a, n):
        out = trim(a, n)
        seen.append(out["input_ids"].shape[1])
        return out

    monkeypatch.setattr(gen_eval, "trim_to_prompts", spy)
    trimmed = gen_eval.generate_answers(job.model, params, tb, tok, max_new_tokens=6)
    assert seen == [256]                                              # ERG prompts (<= 214 tokens) -> 256
    monkeypatch.setattr(gen_eval, "trim_to_prompts", lambda a, n: dict(a))
    full = gen_eval.generate_answers(job.model, params, tb, tok, max_new_tokens=6)
    assert trimmed == full and len(full) == 3 and all(full.values())
