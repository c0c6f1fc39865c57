"""Phase 0 (tiny ``all`` runs only): pretrain the random-init tiny LM on text, then write the base model.

No pretrained weights exist offline, so the tiny preset's frozen backbones start random. HuBERT stays random (its
frozen random features still carry the voice cues: a linear probe reads the emotion from them); CLIP and the face
encoder do not keep the drawn expressions, so they are pretrained on faces first (``phase0_vision``). A random
frozen LM would make phases 1-2 meaningless, so the decoder is first trained as a plain causal
LM on (a) EmoSynth training prompts with their answers, one per task, tokenised exactly as the P2E pipeline
tokenises them and packed whole (one prompt + answer never straddles two windows, so answers are learned after
their whole prompt and at the positions inference uses), and (b) some lines of the corpus the package ships.
The prompts alternate between modality modes (``pretrain_lm.modes``; the tiny config: the main all-branch layout,
with its placeholder runs as ordinary tokens, and ``text``): a real pretrained LLM reads any prompt layout, while
the tiny LM trained on ``text`` prompts only was much worse at the phases' main-mode prompts. Measured on the
quickstart's phase-3 MER hit rate: 48 % (text only, 150 phase-0 steps), 44-54 % (all four of the curriculum's
layouts, 300 steps: each layout sees a quarter of the examples), 85 % (main + text, 300 steps). The placeholder
positions carry no information here; the adapters put the media there in phases 1-3. The result is written as
the base params dir every phase starts from. Users with real weights skip this and pass ``--config.base`` from
``launch.convert``.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from emox_jax import sharding as shd
from emox_jax.models.nano_emox import NanoEmoXConfig, init_params
from emox_jax.models.qwen2 import Qwen2ForCausalLM
from emox_jax.train import lm_step
from emox_jax.train.optim import OptimConfig, make_optimizer
from emox_jax.train.p2e_job import save_params
from emox_jax.train.p2e_step import merge


def text_sequences(records: Sequence[dict], label_types: Sequence[str], tokenizer, config=None, seed: int = 0,
                   modes: Sequence[str] = ("text",)) -> list[list[int]]:
    """Each record's prompt + answer per label type, tokenised by ``data_pipelines.tokenize`` exactly as the
    P2E pipeline does (prompt and answer encoded separately, BOS/EOS), shuffled. ``config``: the
    ``TokenizeConfig`` (max_length, placeholder run lengths; default ``TokenizeConfig()``), e.g. a phase's
    ``DataConfig.tokenize_config()``. The modality mode cycles through ``modes`` from one (record, label type)
    to the next.

    Why not plain text: the pipeline never merges tokens across the prompt/answer boundary (``"Assistant: "``
    ends in a lone space token, then ``"The"``), while the same line tokenised as a whole gives
    ``"Assistant:" "▁The"``. An LM pretrained on whole lines and then frozen (phases 1-2) never learns the
    answer's first token after the lone space, and greedy answers start with ``###`` (seen in the quickstart).
    Long prompts are truncated to ``max_length`` the pipeline's way (subtitle / history first).
    """
    from data_pipelines import prompts
    from data_pipelines.tokenize import TokenizeConfig, TruncationError, make_encoder, tokenize_prompt

    rng = np.random.default_rng(seed)
    cfg = config or TokenizeConfig()
    enc = make_encoder(tokenizer, cfg)
    seqs = []
    k = 0
    for r in records:
        for lt in label_types:
            mode, k = modes[k % len(modes)], k + 1
            try:
                spec = prompts.build_prompt(r, lt, mode, prompts.PromptConfig(), rng)
                seqs.append(tokenize_prompt(spec, tokenizer, cfg, encoder=enc)["input_ids"].tolist())
            except (prompts.PromptError, TruncationError):
                continue
    order = rng.permutation(len(seqs))
    return [seqs[i] for i in order]


def pretrain_lm(model_cfg: NanoEmoXConfig, lines: Sequence[str | Sequence[int]], tokenizer, *, steps: int, lr: float,
                batch_size: int, seq_len: int, seed: int = 0, log: Callable[[str], None] = print) -> tuple[dict, list]:
    """Train the decoder (LoRA off) as a causal LM on text lines and/or tokenised sequences (``pack_lines``);
    returns (decoder params without LoRA, per-step losses)."""
    from tqdm import tqdm

    from emox_jax.train.lm_data import lm_batches, pack_lines

    cfg = model_cfg.llm.replace(lora_rank=0, dtype="float32")
    model = Qwen2ForCausalLM(cfg)
    # Whole segments per window: an answer is learned after its whole prompt, at inference's positions.
    arrays = pack_lines(list(lines), tokenizer, seq_len, whole=True)
    it = iter(lm_batches(arrays, batch_size, seed=seed))
    ocfg = OptimConfig(lr=lr, min_lr=lr / 10, warmup_init_lr=lr / 100, warmup_steps=max(1, steps // 10),
                       total_steps=max(steps, 2), weight_decay=0.01, grad_clip_norm=1.0)
    tx, schedule = make_optimizer(ocfg)
    mesh = shd.make_mesh((1, -1, 1))
    init_fn = lambda r: model.init(r, jnp.zeros((1, seq_len), jnp.int32))["params"]  # noqa: E731
    state, sh = lm_step.init_train_state(init_fn, tx, mesh, jax.random.key(seed))
    step = lm_step.make_train_step(lm_step.lm_loss_fn(model), tx, sh, mesh, schedule=schedule, seed=seed)
    losses = []
    main = jax.process_index() == 0
    bar = tqdm(range(steps), desc="phase0 (LM)", dynamic_ncols=True) if main else range(steps)
    for i in bar:
        b = next(it)
        b = {k: np.asarray(v) for k, v in b.items()}
        pc, pi = jax.process_count(), jax.process_index()
        n = b["input_ids"].shape[0] // pc
        b = {k: v[pi * n:(pi + 1) * n] for k, v in b.items()}
        state, m = step(state, lm_step.shard_batch(b, mesh))
        losses.append(float(m["loss"]))
        if main and (i + 1) % 10 == 0:
            bar.set_postfix_str(f"loss={np.mean(losses[-10:]):.3f}")
    return jax.device_get(state.params), losses


def write_base(model_cfg: NanoEmoXConfig, decoder_params: dict | None, directory: str | pathlib.Path,
               preset: str, seed: int = 0, extra: dict | None = None) -> None:
    """Full NanoEmoX params (random init from ``seed``) with the decoder's base weights replaced (and any
    top-level sub-trees in ``extra``, e.g. the phase-0 vision towers ``clip`` / ``face_encoder``), as a params dir."""
    full = jax.jit(lambda r: nn.meta.unbox(init_params(model_cfg, r, batch=1, length=max(
        64, sum(model_cfg.token_counts.values()) + 2))))(jax.random.key(seed))
    if decoder_params is not None:
        full = merge(full, {"decoder": decoder_params})
    if extra:
        unknown = sorted(set(extra) - set(full))
        if unknown:
            raise ValueError(f"write_base: {unknown} are not NanoEmoX sub-trees (have {sorted(full)})")
        full = merge(full, extra)
    save_params(directory, full, {"preset": preset, "source": "phase0" if decoder_params is not None else "init"})
