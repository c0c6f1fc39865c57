"""Shared helpers of the P2E trainer tests: small tiny-phase jobs and deterministic synthetic global batches."""

from __future__ import annotations

import numpy as np

from emox_jax.models.nano_emox import MODALITIES

SEQ = 64
BATCH = 8


def tiny_job(phase: str, steps: int = 4, batch: int = BATCH, **loop):
    """A ``configs/p2e.py:PHASE,tiny`` job shrunk for tests (no progress bar, logs every step)."""
    from configs.p2e import get_config
    from emox_jax.train.p2e_job import build_job

    c = get_config(f"{phase},tiny")
    c.loop.steps = steps
    c.loop.batch_size = batch
    c.loop.log_every = 1
    c.loop.ckpt_every = 0
    c.loop.progress = False
    c.loop.async_ckpt = False
    c.optim.warmup_steps = 1
    c.optim.total_steps = max(steps, 2)
    c.data.batch_size = batch
    c.data.max_length = SEQ
    c.data.length_buckets = (SEQ,)
    for k, v in loop.items():
        setattr(c.loop, k, v)
    return build_job(c)


def synthetic_batch(job, step: int, batch: int = BATCH, seq: int = SEQ, nan_audio: bool = False) -> dict:
    """A deterministic global batch (a function of ``step``) shaped like the pipeline's for ``job``'s phase."""
    rng = np.random.default_rng(1000 + step)
    cfg, d = job.model, job.data
    counts = cfg.token_counts
    mods = job.modalities
    vocab = cfg.llm.vocab_size
    ids = rng.integers(5, vocab, (batch, seq)).astype(np.int32)
    out = {f"{m}_pos": np.full((batch,), -1, np.int32) for m in MODALITIES}
    pos = 1
    for m in MODALITIES:
        if m in mods:
            out[f"{m}_pos"][:] = pos
            pos += counts[m]
    lengths = rng.integers(seq - 10, seq + 1, batch)
    t = np.arange(seq)[None, :]
    attn = (t < lengths[:, None]).astype(np.int32)
    labels = np.roll(ids, -1, axis=1)
    loss_mask = ((t >= pos + 8) & (t < lengths[:, None] - 1)).astype(np.int32)
    audio = rng.normal(0, 0.3, (batch, d.num_audio_clips, d.clip_samples)).astype(np.float32)
    if nan_audio:
        audio[:] = np.nan
    out.update(input_ids=ids, labels=labels.astype(np.int32), loss_mask=loss_mask, attention_mask=attn,
               positions=np.broadcast_to(np.arange(seq, dtype=np.int32), (batch, seq)).copy(),
               frames=rng.integers(0, 256, (batch, d.num_frames, d.image_size, d.image_size, 3)).astype(np.uint8),
               audio=audio, task_id=rng.integers(0, 6, batch).astype(np.int32), valid=np.ones(batch, np.int32))
    return out
