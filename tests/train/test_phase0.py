"""Phase 0 text and the curriculum's per-phase evaluation inputs: the LM is pretrained on exactly the token
sequences the P2E pipeline produces (text mode), and each phase is evaluated in the modality mode it trained."""

import numpy as np

from configs.p2e import TINY_TASKS, get_config
from data_pipelines import prompts
from data_pipelines.emosynth import iter_examples
from data_pipelines.tokenize import TokenizeConfig, tokenize_prompt
from emox_jax.tokenizer import tiny_tokenizer
from emox_jax.train import gen_eval
from emox_jax.train.lm_data import pack_lines
from emox_jax.train.p2e_job import build_job
from emox_jax.train.phase0 import text_sequences


def test_text_sequences_are_the_pipelines_token_ids():
    tok = tiny_tokenizer()
    recs = list(iter_examples(6, seed=3, split="train", media=False))
    seqs = text_sequences(recs, ["onehot_w_candidates"], tok, TokenizeConfig(max_length=320), seed=0)
    assert len(seqs) == len(recs)
    # Same ids as tokenize_prompt on the same record (prompt and answer encoded separately, BOS .. EOS).
    by_ids = {tuple(s) for s in seqs}
    rng = np.random.default_rng(0)
    cfg = TokenizeConfig(max_length=320)
    want = set()
    for r in recs:
        spec = prompts.build_prompt(r, "onehot_w_candidates", "text", prompts.PromptConfig(), rng)
        out = tokenize_prompt(spec, tok, cfg)
        want.add(tuple(out["input_ids"].tolist()))
        first = int(np.argmax(out["loss_mask"])) + 1          # the answer's first token ...
        assert tok.decode([int(out["input_ids"][first])]).strip() == "The"   # ... not merged with the space
    assert by_ids == want
    for s in seqs:
        assert s[0] == tok.bos_id and s[-1] == tok.eos_id and len(s) <= 320
    # Whole-sequence packing keeps each one in a single window.
    a = pack_lines(seqs, tok, 320, whole=True)
    assert a["loss_mask"].sum() == sum(len(s) - 1 for s in seqs)


def test_each_phase_is_evaluated_in_the_mode_it_trained():
    c = get_config("all,tiny")
    modes = {p: gen_eval.eval_mode(build_job(c.phases[p]).modalities) for p in c.phases}
    assert modes == {"phase1a": "audio_text", "phase1b": "face_frame_text",
                     "phase2": gen_eval.MAIN_MODE, "phase3": gen_eval.MAIN_MODE}
    assert set(TINY_TASKS) == set(gen_eval.TASK_LABEL_TYPES)


def test_text_sequences_cycle_the_modality_modes_with_placeholder_runs():
    """Phase 0 also trains on the phases' prompt layouts (placeholder runs as plain tokens), mode by mode."""
    tok = tiny_tokenizer()
    recs = list(iter_examples(6, seed=3, split="train", media=False))
    counts = {"frame": 8, "face": 4, "audio": 8, "multi": 1}
    cfg = TokenizeConfig(max_length=384, **{f"{m}_tokens": n for m, n in counts.items()})
    seqs = text_sequences(recs, ["sentiment", "intent_recognition"], tok, cfg, seed=0,
                          modes=("text", gen_eval.MAIN_MODE))
    assert len(seqs) == 2 * len(recs)
    ph = tok.placeholder_ids
    runs = [{m: s.count(ph[f"<{m.capitalize()}Here>"]) for m in counts} for s in seqs]
    main = [r for r in runs if r["frame"]]
    text = [r for r in runs if not any(r.values())]
    assert len(main) == len(text) == len(recs)        # modes alternate: half text, half main layout
    assert all(r == counts for r in main)             # each placeholder run as long as the model's tokens
