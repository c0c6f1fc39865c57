"""Generation speed: time to first token for one clip (all encoders + prefill) and decode tokens/s.

    python benchmarks/generate.py                       # tiny preset on CPU (smoke)
    python benchmarks/generate.py --preset nano_emox --dtype bfloat16 --torch     # GPU, real shapes

Prints JSON lines ``{metric, value, unit, device, config}``:
  ttft_clip_s            one clip: CLIP + HuBERT + face + fusion encoders, splice, decoder prefill, first token
  ttft_decoder_only_s    the same prompt length through the decoder alone (comparable with torch below)
  decode_tokens_per_s    batch B: B * (N - 1) / (time(N new tokens) - time(1 new token)), i.e. decode steps
                         only, prefill excluded; for each --batch-sizes entry
  torch_*                with --torch: transformers' ``Qwen2ForCausalLM.generate`` (greedy, random weights, the
                         same decoder shapes and dtype, ``inputs_embeds`` of the same length) in the same run
Weights are random (speed does not depend on values); no stop tokens, so every row runs all N steps. Times are
medians of ``--repeats`` runs after one warm-up (compile) run.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="tiny", choices=("tiny", "nano_emox"))
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--prompt-len", type=int, default=0, help="prompt tokens incl. modality tokens (0: preset default)")
    p.add_argument("--new-tokens", type=int, default=0, help="decode steps timed (0: preset default)")
    p.add_argument("--batch-sizes", default="1,32")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--torch", action="store_true", help="also time transformers' generate on the same decoder")
    p.add_argument("--smoke", action="store_true", help="tiny + few tokens (CI)")
    a = p.parse_args(argv)
    if a.smoke:
        a.preset, a.new_tokens, a.repeats, a.batch_sizes = "tiny", a.new_tokens or 8, 1, "1,4"
    a.prompt_len = a.prompt_len or (96 if a.preset == "tiny" else 256)
    a.new_tokens = a.new_tokens or (16 if a.preset == "tiny" else 128)
    return a


def _timed(fn, repeats):
    import jax

    jax.block_until_ready(fn())  # compile + warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main(argv=None) -> int:
    a = _args(argv)
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import linen as nn

    from configs.nano_emox import preset
    from emox_jax.infer.generate import GenerateConfig, generate_from_embeds
    from emox_jax.infer.predict import MediaConfig
    from emox_jax.models.nano_emox import MODALITIES, NanoEmoX, init_params

    cfg = preset(a.preset)
    if a.dtype != "float32":
        cfg = cfg.with_dtype(a.dtype, a.dtype)
    dev = jax.devices()[0]
    device = f"{dev.platform}:{getattr(dev, 'device_kind', '')}"
    base = {"preset": a.preset, "dtype": a.dtype, "prompt_len": a.prompt_len, "new_tokens": a.new_tokens}

    def emit(metric, value, unit, **extra):
        print(json.dumps({"metric": metric, "value": round(float(value), 6), "unit": unit, "device": device,
                          "config": {**base, **extra}}), flush=True)

    media = MediaConfig.for_model(cfg)
    n_mod = sum(cfg.token_counts.values())
    if a.prompt_len < n_mod + 8:
        raise SystemExit(f"--prompt-len {a.prompt_len} < modality tokens {n_mod} + 8")
    params = jax.jit(lambda r: nn.unbox(init_params(cfg, r, batch=1, length=a.prompt_len)))(jax.random.key(0))
    model = NanoEmoX(cfg)
    rng = np.random.default_rng(0)
    starts, pos = {}, 1
    for m in MODALITIES:
        starts[m] = jnp.full((1,), pos, jnp.int32)
        pos += cfg.token_counts[m]
    ids = jnp.asarray(rng.integers(0, cfg.llm.vocab_size, (1, a.prompt_len)), jnp.int32)
    frames = jnp.asarray(rng.integers(0, 255, (1, media.num_frames, media.image_size, media.image_size, 3)), jnp.uint8)
    audio = jnp.asarray(rng.standard_normal((1, media.num_audio_clips, int(media.clip_seconds * media.sample_rate))),
                        jnp.float32)
    lengths1 = jnp.full((1,), a.prompt_len, jnp.int32)
    key = jax.random.key(0)

    def gen_cfg(n):
        return GenerateConfig(max_new_tokens=n)   # greedy, no stop tokens: every row runs n steps

    @jax.jit
    def clip_first_token(p, ids, frames, audio, starts):
        e = model.apply({"params": p}, ids, frames=frames, audio=audio, starts=starts, modalities=MODALITIES,
                        method=NanoEmoX.embed_inputs)
        return generate_from_embeds(p["decoder"], e, lengths1, key, model_config=cfg.llm, gen_config=gen_cfg(1)).tokens

    emit("ttft_clip_s", _timed(lambda: clip_first_token(params, ids, frames, audio, starts), a.repeats), "s", batch=1)

    dec = params["decoder"]
    d_model = cfg.llm.hidden_size
    cdtype = jnp.dtype(a.dtype)
    emb1 = jnp.asarray(rng.standard_normal((1, a.prompt_len, d_model)) * 0.02, cdtype)
    t_first = _timed(lambda: generate_from_embeds(dec, emb1, lengths1, key, model_config=cfg.llm,
                                                  gen_config=gen_cfg(1)).tokens, a.repeats)
    emit("ttft_decoder_only_s", t_first, "s", batch=1)

    batches = [int(b) for b in a.batch_sizes.split(",") if b.strip()]
    for b in batches:
        emb = jnp.asarray(rng.standard_normal((b, a.prompt_len, d_model)) * 0.02, cdtype)
        lens = jnp.full((b,), a.prompt_len, jnp.int32)
        t1 = _timed(lambda: generate_from_embeds(dec, emb, lens, key, model_config=cfg.llm,
                                                 gen_config=gen_cfg(1)).tokens, a.repeats)
        tn = _timed(lambda: generate_from_embeds(dec, emb, lens, key, model_config=cfg.llm,
                                                 gen_config=gen_cfg(a.new_tokens)).tokens, a.repeats)
        emit("decode_tokens_per_s", b * (a.new_tokens - 1) / max(tn - t1, 1e-9), "tokens/s", batch=b)

    if a.torch:
        _torch_bench(a, cfg, batches, emit)
    return 0


def _torch_bench(a, cfg, batches, emit):
    """transformers' generate on the same decoder shapes (random weights), timed in the same process."""
    import torch
    import transformers

    from emox_jax.convert.qwen2 import config_to_hf

    hf = config_to_hf(cfg.llm.replace(lora_rank=0), "bfloat16" if a.dtype == "bfloat16" else "float32")
    hf_cfg = transformers.Qwen2Config(**{k: v for k, v in hf.items() if k not in ("architectures", "model_type")})
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if a.dtype == "bfloat16" else torch.float32
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(hf_cfg).to(device=dev, dtype=dtype).eval()

    def sync():
        if dev == "cuda":
            torch.cuda.synchronize()

    def run(b, n):
        emb = torch.randn(b, a.prompt_len, cfg.llm.hidden_size, device=dev, dtype=dtype) * 0.02
        mask = torch.ones(b, a.prompt_len, dtype=torch.long, device=dev)

        def go():
            with torch.inference_mode():
                model.generate(inputs_embeds=emb, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                               do_sample=False, pad_token_id=0, eos_token_id=None)
            sync()

        go()
        ts = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            go()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    emit("torch_ttft_decoder_only_s", run(1, 1), "s", batch=1, impl=f"transformers {transformers.__version__}")
    for b in batches:
        t1, tn = run(b, 1), run(b, a.new_tokens)
        emit("torch_decode_tokens_per_s", b * (a.new_tokens - 1) / max(tn - t1, 1e-9), "tokens/s", batch=b,
             impl=f"transformers {transformers.__version__}")


if __name__ == "__main__":
    sys.exit(main())
