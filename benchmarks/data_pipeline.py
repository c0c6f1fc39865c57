"""Data-pipeline throughput: decoded, preprocessed, tokenized samples/s per CPU core, and with N workers.

    python -m benchmarks.data_pipeline                       # smoke: 12 EmoSynth clips, 224x224, 1 and 2 workers
    python -m benchmarks.data_pipeline --clips 64 --samples 256 --workers 1,2,4,8,16 --batch-size 3

Samples are EmoSynth clips (real H.264 mp4 + 16 kHz wav bytes, generated in memory with
`data_pipelines.emosynth.iter_examples`) in the main mode `multiface_audio_face_frame_text`, so each sample
pays for: 8 frames decoded and resized to --image-size, 8 x 2 s audio clips decoded/resampled/normalised,
the six-task prompt, tokenisation (tiny sentencepiece model, or --tokenizer), batching with length buckets.
Prints JSON lines {metric, value, unit, device, config}; the last line states what the per-core figure
implies for feeding the phase-3 train step on a 16-core host.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time


def _emit(metric: str, value: float, unit: str, config: dict) -> None:
    print(json.dumps({"metric": metric, "value": round(float(value), 3), "unit": unit,
                      "device": f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)",
                      "config": config}), flush=True)


def _data_cfg(args, workers: int, threads: int) -> dict:
    return dict(datasets=[dict(name="emosynth", modality_mode="multiface_audio_face_frame_text",
                               label_type="hybird")],
                batch_size=args.batch_size, image_size=args.image_size, max_length=1024, num_threads=threads,
                mp_workers=workers, prefetch_buffer_size=4)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=12, help="distinct EmoSynth clips (cycled)")
    p.add_argument("--samples", type=int, default=48, help="samples timed per measurement")
    p.add_argument("--workers", default="2", help="comma-separated mp_prefetch worker counts")
    p.add_argument("--batch-size", type=int, default=3, help="per-device batch of the phase-3 step")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--tokenizer", default="", help="emox_jax.tokenizer.load_tokenizer spec (default tiny)")
    p.add_argument("--step-time", type=float, default=0.0,
                   help="measured phase-3 step seconds on the accelerator (from benchmarks/p2e_step.py); if "
                        "given, the implication line says how many cores that step needs")
    p.add_argument("--smoke", action="store_true", help="the default small run (kept for CI symmetry)")
    args = p.parse_args()

    from absl import flags
    flags.FLAGS.mark_as_parsed()   # grain's mp_prefetch reads absl flags
    import numpy as np

    from data_pipelines import pipeline
    from data_pipelines.emosynth import iter_examples
    from emox_jax.tokenizer import load_tokenizer, tiny_tokenizer

    tok = load_tokenizer(args.tokenizer) if args.tokenizer else tiny_tokenizer()
    t0 = time.perf_counter()
    records = list(iter_examples(args.clips, seed=0))
    gen_s = time.perf_counter() - t0
    sources = {"emosynth": records}
    base = {"clips": args.clips, "samples": args.samples, "image_size": args.image_size,
            "batch_size": args.batch_size, "mode": "multiface_audio_face_frame_text",
            "tokenizer": args.tokenizer or "tiny", "emosynth_gen_s": round(gen_s, 2)}

    # 1) one core: the per-sample map (decode + prompt + tokenize) in a plain loop, no threads.
    cfg = pipeline.data_config(_data_cfg(args, 0, 1))
    proc = pipeline.SampleProcessor(cfg, tok)
    rng = np.random.default_rng(0)
    proc((0, records[0]), rng)   # warm-up (imports, tokenizer cache)
    t0 = time.perf_counter()
    skipped = 0
    for i in range(args.samples):
        out = proc((0, records[i % len(records)]), rng)
        skipped += "_skip" in out
    per_core = args.samples / (time.perf_counter() - t0)
    _emit("samples_per_s_per_core", per_core, "samples/s", {**base, "stage": "map only, 1 thread",
                                                            "skipped": skipped})

    # 2) the full pipeline (map + batching), in-process with 1 thread, then mp_prefetch with N workers.
    results = {}
    for workers in [0] + [int(w) for w in args.workers.split(",") if w.strip()]:
        it = pipeline.make_train_iterator(_data_cfg(args, workers, 1), tok, sources=sources,
                                          process_index=0, process_count=1)
        next(it)   # start-up (worker spawn) is not timed
        n_batches = max(1, args.samples // args.batch_size)
        t0 = time.perf_counter()
        for _ in range(n_batches):
            next(it)
        rate = n_batches * args.batch_size / (time.perf_counter() - t0)
        results[workers] = rate
        _emit("pipeline_samples_per_s", rate, "samples/s",
              {**base, "mp_workers": workers, "threads_per_process": 1, "skipped": it.skipped})
        close = getattr(it, "close", None)
        if close:
            close()

    cores = 16
    implied = per_core * cores
    note = (f"one core decodes+prompts+tokenizes {per_core:.1f} samples/s at {args.image_size}x{args.image_size}; "
            f"a 16-core host (say 14 cores for data) supplies ~{per_core * 14:.0f} samples/s, i.e. "
            f"{per_core * 14 / args.batch_size:.1f} phase-3 steps/s at batch {args.batch_size}")
    if args.step_time > 0:
        need = args.batch_size / args.step_time
        note += (f"; the measured step ({args.step_time:.3f} s) consumes {need:.1f} samples/s = "
                 f"{need / per_core:.1f} cores")
    else:
        note += (f"; the data pipeline stops being the bottleneck when the phase-3 step takes longer than "
                 f"{args.batch_size / (per_core * 14):.3f} s")
    _emit("implied_16core_samples_per_s", implied, "samples/s",
          {**base, "per_core": round(per_core, 3), "workers_measured": {str(k): round(v, 2)
                                                                        for k, v in results.items()},
           "note": note})


if __name__ == "__main__":   # mp_prefetch workers spawn and re-import __main__
    main()
