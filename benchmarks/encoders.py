"""Throughput of the frozen perception encoders: CLIP ViT-L/14 (images/s), HuBERT-L (2 s clips/s), and the
facial encoder (frames/s) when ``emox_jax.models.face_encoder.FaceEncoder`` is importable.

    python benchmarks/encoders.py                       # tiny configs on CPU (smoke), fp32
    python benchmarks/encoders.py --full --batch 64     # real shapes, bf16 compute (GPU)
    python benchmarks/encoders.py --full --torch        # + the same modules in PyTorch/transformers, same batch

Each forward returns what Nano-EmoX reads: CLIP CLS of hidden states (12, 16, 22, 23) (24th block not run);
HuBERT time-means of layers 16..24 (main = 21..24, multiscale = 16/18/22). The PyTorch side runs
``CLIPVisionModel`` / ``HubertModel`` with ``output_hidden_states=True`` (all blocks, as the reference does),
SDPA attention, in bf16 on GPU (fp32 on CPU), ``torch.inference_mode``. Params are random (throughput only).
One JSON line per measurement: {metric, value, unit, device, config}.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import linen as nn  # noqa: E402

from emox_jax.models.clip_vit import ClipVision, ClipVisionConfig  # noqa: E402
from emox_jax.models.hubert import Hubert, HubertConfig  # noqa: E402


def emit(metric, value, unit, device, config):
    print(json.dumps({"metric": metric, "value": round(float(value), 3), "unit": unit, "device": device,
                      "config": config}), flush=True)


def time_fn(fn, args, steps, warmup):
    """Seconds per call of a jitted ``fn(*args)`` (compile + ``warmup`` calls excluded)."""
    for _ in range(max(warmup, 1)):
        jax.block_until_ready(fn(*args))
    t0 = time.perf_counter()
    for _ in range(steps):
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / steps


def init_params(model, x, dtype):
    """Random params built on device (jitted init), cast to the storage dtype of a frozen backbone."""
    params = jax.jit(lambda k: nn.unbox(model.init(k, x))["params"])(jax.random.key(0))
    return jax.tree.map(lambda a: a.astype(dtype), params)


def bench_clip(args, device, dtype):
    cfg = ClipVisionConfig.vit_l14() if args.full else ClipVisionConfig.tiny()
    cfg = dataclasses.replace(cfg, dtype=dtype, param_dtype=dtype)
    layers = tuple(sorted({*cfg.multiscale_layers, cfg.frame_layer}))
    model = ClipVision(cfg)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((args.batch, cfg.image_size, cfg.image_size, 3)),
                    jnp.float32)
    params = init_params(model, x[:1], dtype)
    fwd = jax.jit(lambda p, x: model.apply({"params": p}, x, layers=layers)["cls"])
    sec = time_fn(fwd, (params, x), args.steps, args.warmup)
    conf = {"model": "clip_vit_l14" if args.full else "clip_tiny", "batch": args.batch, "dtype": dtype,
            "layers": list(layers), "framework": "jax"}
    emit("clip_images_per_s", args.batch / sec, "images/s", device, conf)
    return cfg


def bench_hubert(args, device, dtype):
    cfg = HubertConfig.large() if args.full else HubertConfig.tiny()
    cfg = dataclasses.replace(cfg, dtype=dtype, param_dtype=dtype)
    layers = tuple(sorted({*cfg.main_layers, *cfg.multiscale_layers}))
    model = Hubert(cfg)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((args.batch, cfg.min_samples)), jnp.float32)
    params = init_params(model, x[:1], dtype)
    fwd = jax.jit(lambda p, x: model.apply({"params": p}, x, layers=layers)["time_mean"])
    sec = time_fn(fwd, (params, x), args.steps, args.warmup)
    conf = {"model": "hubert_large" if args.full else "hubert_tiny", "batch": args.batch, "dtype": dtype,
            "samples": cfg.min_samples, "frames": cfg.num_frames(cfg.min_samples), "framework": "jax"}
    emit("hubert_clips_per_s", args.batch / sec, "clips/s", device, conf)
    return cfg


def bench_face(args, device, dtype):
    """Facial encoder hook: runs only if another engineer's ``FaceEncoder`` is importable."""
    try:
        from emox_jax.models.face_encoder import FaceEncoder, FaceEncoderConfig
    except ImportError as e:
        emit("face_frames_per_s", float("nan"), "frames/s", device, {"skipped": f"FaceEncoder not importable: {e}"})
        return
    cfg = FaceEncoderConfig.facexformer() if args.full else FaceEncoderConfig.tiny()
    cfg = dataclasses.replace(cfg, swin=dataclasses.replace(cfg.swin, dtype=dtype, param_dtype=dtype))
    s = cfg.swin
    frames = 8  # one clip = 8 frames, as the reference samples
    b = max(args.batch // frames, 1)
    model = FaceEncoder(cfg)
    x = jnp.asarray(np.random.default_rng(0).uniform(0, 255, (b, frames, s.image_size, s.image_size, 3)),
                    jnp.float32)
    params = init_params(model, x[:1], dtype)
    fwd = jax.jit(lambda p, x: model.apply({"params": p}, x))
    sec = time_fn(fwd, (params, x), args.steps, args.warmup)
    emit("face_frames_per_s", b * frames / sec, "frames/s", device,
         {"model": "facexformer_swin_b" if args.full else "face_tiny", "batch_frames": b * frames, "dtype": dtype,
          "framework": "jax"})


def bench_torch(args, clip_cfg, hubert_cfg):
    """The same two encoders in PyTorch + transformers at the same batch (GPU if available)."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel, HubertConfig as HFHubertConfig, HubertModel

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    tdtype = torch.bfloat16 if (args.full and dev == "cuda") else torch.float32
    device = torch.cuda.get_device_name() if dev == "cuda" else "cpu"

    def timed(model, x):
        with torch.inference_mode():
            for _ in range(max(args.warmup, 1)):
                model(x, output_hidden_states=True)
            if dev == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                model(x, output_hidden_states=True)
            if dev == "cuda":
                torch.cuda.synchronize()
        return (time.perf_counter() - t0) / args.steps

    c = clip_cfg
    clip = CLIPVisionModel(CLIPVisionConfig(
        hidden_size=c.hidden_size, intermediate_size=c.mlp_dim, num_hidden_layers=c.num_layers,
        num_attention_heads=c.num_heads, image_size=c.image_size, patch_size=c.patch_size, hidden_act=c.activation,
        attn_implementation="sdpa")).eval().to(dev, tdtype)
    x = torch.randn(args.batch, 3, c.image_size, c.image_size, device=dev, dtype=tdtype)
    emit("clip_images_per_s", args.batch / timed(clip, x), "images/s", device,
         {"model": "clip_vit_l14" if args.full else "clip_tiny", "batch": args.batch, "dtype": str(tdtype),
          "framework": "torch"})
    del clip
    h = hubert_cfg
    hub = HubertModel(HFHubertConfig(
        hidden_size=h.hidden_size, num_hidden_layers=h.num_layers, num_attention_heads=h.num_heads,
        intermediate_size=h.mlp_dim, conv_dim=h.conv_dim, conv_kernel=h.conv_kernel, conv_stride=h.conv_stride,
        num_conv_pos_embeddings=h.pos_conv_kernel, num_conv_pos_embedding_groups=h.pos_conv_groups,
        do_stable_layer_norm=True, feat_extract_norm="layer", conv_bias=False,
        attn_implementation="sdpa")).eval().to(dev, tdtype)
    w = torch.randn(args.batch, h.min_samples, device=dev, dtype=tdtype)
    emit("hubert_clips_per_s", args.batch / timed(hub, w), "clips/s", device,
         {"model": "hubert_large" if args.full else "hubert_tiny", "batch": args.batch, "dtype": str(tdtype),
          "samples": h.min_samples, "framework": "torch"})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="real shapes (ViT-L/14, HuBERT-L, Swin-B) in bf16")
    p.add_argument("--batch", type=int, default=None, help="images / clips / frames per call (default 8 tiny, 64 full)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16"], help="default: bf16 with --full")
    p.add_argument("--torch", action="store_true", help="also time the PyTorch/transformers modules")
    p.add_argument("--only", default="clip,hubert,face", help="comma list of encoders to run")
    args = p.parse_args(argv)
    args.batch = args.batch or (64 if args.full else 8)
    args.steps = args.steps or (20 if args.full else 5)
    dtype = args.dtype or ("bfloat16" if args.full else "float32")
    d = jax.devices()[0]
    device = f"{d.platform}:{getattr(d, 'device_kind', '')}"
    only = set(args.only.split(","))
    clip_cfg = bench_clip(args, device, dtype) if "clip" in only else ClipVisionConfig.tiny()
    hubert_cfg = bench_hubert(args, device, dtype) if "hubert" in only else HubertConfig.tiny()
    if "face" in only:
        bench_face(args, device, dtype)
    if args.torch:
        bench_torch(args, clip_cfg if args.full else ClipVisionConfig.tiny(),
                    hubert_cfg if args.full else HubertConfig.tiny())


if __name__ == "__main__":
    main()
