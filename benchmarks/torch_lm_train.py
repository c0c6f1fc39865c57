"""The same decoder train step in PyTorch + transformers (``Qwen2ForCausalLM``), for comparison with lm_train.py.

    python benchmarks/torch_lm_train.py                              # CPU smoke: tiny shapes, fp32
    python benchmarks/torch_lm_train.py --preset qwen2_5_1_5b --seq 2048 --batch 8 --dtype bfloat16 [--compile]

Same shapes as ``emox_jax.models.qwen2.Qwen2Config`` presets, random tokens, fp32 master weights, bf16 autocast
when ``--dtype bfloat16``, SDPA attention, AdamW (fused on CUDA) with warmup, fp32 loss (transformers upcasts
the logits). ``--remat full`` turns on gradient checkpointing. Prints JSON lines with the FLOP count of
``benchmarks/common.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny", choices=["tiny", "qwen2_5_1_5b"])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="autocast dtype")
    p.add_argument("--remat", default="none", choices=["none", "full"], help="full = gradient checkpointing")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--peak-tflops", type=float, default=None)
    p.add_argument("--smoke", action="store_true", help="CPU smoke run (the default shapes; fewer steps)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.smoke:
        args.steps, args.warmup = 3, 1
    import torch
    import transformers

    from benchmarks import common
    from emox_jax.models.qwen2 import Qwen2Config

    ours = getattr(Qwen2Config, args.preset)()
    hf_cfg = transformers.Qwen2Config(
        vocab_size=ours.vocab_size, hidden_size=ours.hidden_size, intermediate_size=ours.intermediate_size,
        num_hidden_layers=ours.num_layers, num_attention_heads=ours.num_heads,
        num_key_value_heads=ours.num_kv_heads, head_dim=ours.head_dim, rms_norm_eps=ours.rms_norm_eps,
        rope_theta=ours.rope_theta, tie_word_embeddings=ours.tie_word_embeddings,
        max_position_embeddings=ours.max_position_embeddings, attn_implementation="sdpa", use_cache=False)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(hf_cfg).to(dev).train()  # fp32 master weights
    if args.remat == "full":
        model.gradient_checkpointing_enable()
    fwd = torch.compile(model) if args.compile else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05,
                            fused=dev.type == "cuda")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 10))

    toks = torch.randint(0, ours.vocab_size, (args.batch, args.seq + 1), device=dev)
    inputs, targets = toks[:, :-1].contiguous(), toks[:, 1:].contiguous()
    amp = (torch.autocast(dev.type, dtype=torch.bfloat16) if args.dtype == "bfloat16"
           else contextlib.nullcontext())

    def step():
        with amp:
            logits = fwd(input_ids=inputs).logits
        # fp32 cross-entropy over the full vocabulary, as in the JAX step (targets already shifted).
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.view(-1))
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        return loss

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    loss = step()
    sync()
    first_s = time.perf_counter() - t0
    for _ in range(args.warmup):
        loss = step()
    sync()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        loss = step()
        loss.item()
        sync()
        times.append(time.perf_counter() - t0)

    kind = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    matmul = common.qwen2_matmul_params(ours.vocab_size, ours.hidden_size, ours.num_layers, ours.num_heads,
                                        ours.num_kv_heads, ours.head_dim, ours.intermediate_size)
    fpt = common.lm_train_flops_per_token(matmul, ours.num_layers, args.seq, ours.num_heads, ours.head_dim)
    peak = common.peak_flops(kind, args.dtype, args.peak_tflops)
    config = {"framework": "torch", "torch": torch.__version__, "transformers": transformers.__version__,
              "preset": args.preset, "batch": args.batch, "seq": args.seq, "dtype": args.dtype, "remat": args.remat,
              "compile": args.compile, "attention": "sdpa", "params": sum(p.numel() for p in model.parameters()),
              "matmul_params": matmul, "first_step_s": round(first_s, 2), "final_loss": round(loss.item(), 4)}
    common.report_lm(times, tokens_per_step=args.batch * args.seq, flops_per_token=fpt, device=f"{kind} x1",
                     peak=peak, config=config, prefix="torch_lm_train")


if __name__ == "__main__":
    main()
