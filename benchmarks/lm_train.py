"""Tokens/s and MFU of the sharded decoder train step (``emox_jax.train.lm_step``) on random tokens.

    python benchmarks/lm_train.py                                   # CPU smoke: tiny preset, batch 8 × 64
    python benchmarks/lm_train.py --preset qwen2_5_1_5b --seq 2048 --batch 8 --dtype bfloat16 --remat dots_no_batch

Full step as trained: fp32 master params, ``--dtype`` compute, AdamW (+ warmup/cosine), fp32 loss over the
whole vocabulary, donated state, mesh ``--mesh`` (default FSDP over all devices). Prints JSON lines
(see ``benchmarks/common.py`` for the FLOP count). Median of ``--steps`` timed steps after ``--warmup``.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny", choices=["tiny", "qwen2_5_1_5b"])
    p.add_argument("--batch", type=int, default=8, help="global batch (sequences)")
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="compute dtype")
    p.add_argument("--remat", default="none", help="remat policy: none|full|dots|dots_no_batch|everything")
    p.add_argument("--attention", default=None, choices=[None, "einsum", "xla", "cudnn"], help="default: per platform")
    p.add_argument("--mesh", default="1,-1,1", help="data,fsdp,tensor")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--peak-tflops", type=float, default=None, help="override the peak FLOP/s table")
    p.add_argument("--smoke", action="store_true", help="CPU smoke run (the default shapes; fewer steps)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.smoke:
        args.steps, args.warmup = 3, 1
    import jax
    import jax.numpy as jnp
    import numpy as np

    from benchmarks import common
    from emox_jax import sharding as shd
    from emox_jax.models.qwen2 import Qwen2Config, Qwen2ForCausalLM
    from emox_jax.train import lm_step, optim

    preset = getattr(Qwen2Config, args.preset)
    cfg = preset(dtype=args.dtype, remat_policy=args.remat, attention_impl=args.attention)
    model = Qwen2ForCausalLM(cfg)
    ocfg = optim.OptimConfig(lr=1e-4, min_lr=1e-5, warmup_steps=10, total_steps=10_000)
    tx, schedule = optim.make_optimizer(ocfg)
    mesh = shd.make_mesh(tuple(int(x) for x in args.mesh.split(",")))

    t0 = time.perf_counter()
    state, sh = lm_step.init_train_state(
        lambda r: model.init(r, jnp.zeros((1, args.seq), jnp.int32))["params"], tx, mesh, jax.random.key(0))
    jax.block_until_ready(state)
    init_s = time.perf_counter() - t0
    step = lm_step.make_train_step(lm_step.lm_loss_fn(model, deterministic=True), tx, sh, mesh, schedule=schedule)

    rng = np.random.default_rng(0)
    toks = rng.integers(0, cfg.vocab_size, (args.batch, args.seq + 1)).astype(np.int32)
    batch = lm_step.shard_batch({"input_ids": toks[:, :-1], "targets": toks[:, 1:],
                                 "loss_mask": np.ones((args.batch, args.seq), np.float32)}, mesh)
    t0 = time.perf_counter()
    state, m = step(state, batch)
    float(m["loss"])
    compile_s = time.perf_counter() - t0
    for _ in range(args.warmup):
        state, m = step(state, batch)
    float(m["loss"])
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        state, m = step(state, batch)
        float(m["loss"])  # blocks until the step is done
        times.append(time.perf_counter() - t0)

    n_params = sum(x.size for x in jax.tree.leaves(state.params))
    matmul = common.qwen2_matmul_params(cfg.vocab_size, cfg.hidden_size, cfg.num_layers, cfg.num_heads,
                                        cfg.num_kv_heads, cfg.head_dim, cfg.intermediate_size)
    fpt = common.lm_train_flops_per_token(matmul, cfg.num_layers, args.seq, cfg.num_heads, cfg.head_dim)
    dev = jax.devices()[0]
    device = f"{dev.device_kind} x{jax.device_count()}"
    peak = common.peak_flops(dev.device_kind, args.dtype, args.peak_tflops)
    peak = None if peak is None else peak * jax.device_count()
    config = {"framework": "jax", "jax": jax.__version__, "preset": args.preset, "batch": args.batch,
              "seq": args.seq, "dtype": args.dtype, "remat": args.remat, "attention": args.attention or "default",
              "mesh": dict(zip(shd.MESH_AXES, mesh.devices.shape)), "params": int(n_params),
              "matmul_params": int(matmul), "compile_s": round(compile_s, 2), "init_s": round(init_s, 2),
              "final_loss": round(float(m["loss"]), 4)}
    common.report_lm(times, tokens_per_step=args.batch * args.seq, flops_per_token=fpt, device=device, peak=peak,
                     config=config)


if __name__ == "__main__":
    main()
