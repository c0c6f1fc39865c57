"""Phase-3 P2E train step throughput: samples/s, step time and MFU (JAX, sharded jit step of the trainer).

    python benchmarks/p2e_step.py                                     # CPU smoke: tiny preset, fp32
    python benchmarks/p2e_step.py --preset nano_emox --dtype bfloat16  # GPU/TPU: the reference's shapes
    python benchmarks/p2e_step.py --cached-features                   # the step without the frozen backbones

Reference shapes (``nano_emox``): 8 frames 224x224, 8 audio clips x 2 s at 16 kHz, sequence 1024 with the 69
modality tokens spliced in, LoRA r16 on all 7 projections, phase-3 trainable set (adapters + fusion + LoRA),
frozen backbones stored in bf16, bf16 compute. Synthetic batch (no data pipeline in the timing).

MFU here = the step's model FLOPs (every matmul and convolution it performs: forward of the frozen encoders,
forward + the backward autodiff builds through the decoder (input gradients; weight gradients only for LoRA and
the adapters), counted on the jaxpr of the step without remat, ``emox_jax/train/flops.py``) / time / peak.
``nano_emox`` at batch 8 x 1024: 72.6 TFLOP per step.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny", choices=["tiny", "nano_emox"])
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16"], help="default: fp32 tiny, bf16 real")
    p.add_argument("--batch", type=int, default=None, help="global batch (default 8 tiny, 8 real)")
    p.add_argument("--seq", type=int, default=None, help="sequence length (default 320 tiny, 1024 real)")
    p.add_argument("--remat", default=None, help="remat policy (default none tiny, dots_no_batch real)")
    p.add_argument("--attention", default=None, choices=["einsum", "xla", "cudnn"],
                   help="attention of the decoder, CLIP and HuBERT (default: per platform, layers/attention.py)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--peak-tflops", type=float, default=None)
    p.add_argument("--smoke", action="store_true", help="the CPU default, fewer steps")
    p.add_argument("--cached-features", action="store_true",
                   help="the step reads precomputed frozen-backbone features (loop.frozen_feature_cache_mb > 0), "
                        "so CLIP / the face encoder / HuBERT are not in the timed step")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    import jax

    from benchmarks.common import emit, peak_flops, summarize_steps
    from configs.p2e import get_config
    from emox_jax import sharding as shd
    from emox_jax.models.nano_emox import MODALITIES
    from emox_jax.train import p2e_step as S
    from emox_jax.train.p2e_job import abstract_boxed, build_job, initial_params, trainable_split
    from emox_jax.train.optim import make_optimizer

    real = args.preset == "nano_emox"
    if args.smoke:
        args.steps, args.warmup = 2, 1
    c = get_config(f"phase3,{args.preset}")
    c.loop.dtype = args.dtype or ("bfloat16" if real else "float32")
    c.loop.backbone_param_dtype = "bfloat16" if c.loop.dtype == "bfloat16" else ""
    c.loop.remat = args.remat or ("dots_no_batch" if real else "none")
    batch = args.batch or 8
    seq = args.seq or (1024 if real else 320)
    c.loop.batch_size = batch
    c.data.max_length = seq
    c.data.length_buckets = (seq,)
    job = build_job(c)
    if args.attention:
        job = dataclasses.replace(job, model=job.model.with_attention(args.attention))
    import flax.linen as nn

    from tests.train.p2e_testlib import synthetic_batch

    mesh = shd.make_mesh((1, -1, 1))
    rules = shd.logical_axis_rules()
    boxed = abstract_boxed(job.model)
    sh = S.param_shardings(boxed, mesh, rules)
    abstract_plain = nn.meta.unbox(boxed)
    params = initial_params(job, abstract_plain, sh, log=lambda *_: None)
    trainable, frozen = trainable_split(job, params)
    train_sh, frozen_sh = trainable_split(job, sh)
    tx, schedule = make_optimizer(job.optim)
    st_sh = S.state_shardings(trainable_split(job, abstract_plain)[0], train_sh, tx, mesh)
    state = S.init_state(trainable, tx, st_sh)
    step = S.make_train_step(S.NanoEmoX(job.model), tx, st_sh, frozen_sh, mesh, rules, modalities=MODALITIES,
                             schedule=schedule)
    host = S.host_batch(synthetic_batch(job, 0, batch=batch, seq=seq), MODALITIES)
    if args.cached_features:
        from emox_jax.train.frozen_features import FrozenFeatureCache

        host = FrozenFeatureCache(job.model, frozen, MODALITIES, max_mb=1e6)(host)
    from emox_jax.train.lm_step import shard_batch

    b = shard_batch(host, mesh)
    t0 = time.perf_counter()
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        exe = step.jitted.lower(state, frozen, b).compile()
    compile_s = time.perf_counter() - t0
    # MFU's numerator: the step's matmul FLOPs counted on the jaxpr of a twin without remat and with XLA
    # attention (emox_jax/train/flops.py; XLA's cost analysis counts a scanned stack's body once).
    from emox_jax.train.flops import countable, traced_flops

    counted = S.make_train_step(S.NanoEmoX(countable(job.model)), tx, st_sh, frozen_sh, mesh, rules,
                                modalities=MODALITIES, schedule=schedule)
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        flops = traced_flops(counted.jitted, state, frozen, b)
    times = []
    for i in range(args.warmup + args.steps):
        t = time.perf_counter()
        with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
            state, m = exe(state, frozen, b)
        jax.block_until_ready(m["loss"])
        if i >= args.warmup:
            times.append(time.perf_counter() - t)
    dev = jax.devices()[0]
    device = f"{dev.device_kind} x{jax.device_count()}"
    peak = peak_flops(dev.device_kind, c.loop.dtype, args.peak_tflops)
    s = summarize_steps(times)
    llm = job.model.llm
    cfg = dict(preset=args.preset, dtype=c.loop.dtype, batch=batch, seq=seq, frames=job.data.num_frames,
               image=job.data.image_size, audio_clips=job.data.num_audio_clips,
               clip_seconds=job.data.clip_seconds, lora_rank=llm.lora_rank, remat=c.loop.remat,
               cached_features=args.cached_features, attention=args.attention or "default",
               devices=jax.device_count(), compile_s=round(compile_s, 1), model_flops_per_step=flops,
               loss=float(m["loss"]), peak_flops=peak)
    emit("p2e_phase3_step_time", round(s["median_s"] * 1e3, 3), "ms", device, cfg)
    emit("p2e_phase3_samples_per_s", round(batch / s["median_s"], 3), "samples/s", device, cfg)
    emit("p2e_phase3_model_tflops", round(flops / s["median_s"] / 1e12, 4), "TFLOP/s", device, cfg)
    emit("p2e_phase3_mfu", None if not peak else round(100 * flops / s["median_s"] / (peak * jax.device_count()), 2),
         "%", device, cfg)


if __name__ == "__main__":
    main()
