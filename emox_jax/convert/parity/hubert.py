"""Parity kind ``hubert``: HF ``HubertModel`` dir vs ``Hubert`` on the same random waveforms.

    python -m launch.check_parity --kind hubert --hf-dir DIR [--seq-len SAMPLES --batch B --seed S]

Both sides see per-clip normalised input (HF via ``Wav2Vec2FeatureExtractor`` on a list of clips, ours via
``normalize="per_clip"``). No 2 s padding here (``min_samples`` = ``--seq-len``): padding belongs to the
reference's audio loader, not to ``HubertModel``. Compares every hidden state's full sequence; our last
index (with the final LayerNorm, reference indexing) is compared with HF's ``last_hidden_state``.
"""

from __future__ import annotations

import numpy as np

DEFAULT_TOLERANCE = 1e-4
BF16_TOLERANCE = 0.1


def run(args) -> dict:
    import jax
    import torch
    from transformers import HubertModel, Wav2Vec2FeatureExtractor

    from emox_jax.convert.hubert import load_hubert
    from emox_jax.models.hubert import Hubert

    if not args.hf_dir:
        raise SystemExit("check_parity --kind hubert needs --hf-dir (a HubertModel save_pretrained dir)")
    n = int(args.seq_len)
    cfg, params = load_hubert(args.hf_dir, dtype=args.dtype, min_samples=n)
    if cfg.num_frames(n) < 1:
        k = 1
        for kk, s in reversed(list(zip(cfg.conv_kernel, cfg.conv_stride))):
            k = (k - 1) * s + kk
        raise SystemExit(f"check_parity --kind hubert: --seq-len {n} is shorter than the conv extractor's "
                         f"receptive field ({k} samples)")
    rng = np.random.default_rng(args.seed)
    wave = (rng.standard_normal((args.batch, n)) * rng.uniform(0.1, 2.0, (args.batch, 1))).astype(np.float32)

    model = Hubert(cfg)
    layers = tuple(range(cfg.num_layers + 1))
    with jax.default_matmul_precision("highest"):
        ours = jax.jit(lambda p, x: model.apply({"params": p}, x, layers=layers, return_sequences=True,
                                                normalize="per_clip"))(params, wave)

    fe = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=cfg.sample_rate, padding_value=0.0,
                                  do_normalize=True, return_attention_mask=False)
    inputs = fe(list(wave), sampling_rate=cfg.sample_rate, return_tensors="pt").input_values
    torch_model = HubertModel.from_pretrained(args.hf_dir).eval()
    with torch.no_grad():
        ref = torch_model(inputs, output_hidden_states=True)
    diffs = {}
    for i in layers:
        r = ref.last_hidden_state if i == cfg.num_layers else ref.hidden_states[i]
        diffs[f"hidden_{i}"] = float(np.max(np.abs(np.asarray(ours["sequence"][i]) - r.numpy())))
    return {"kind": "hubert", "max_abs_diff": max(diffs.values()), "per_output": diffs,
            "tolerance": DEFAULT_TOLERANCE if args.dtype == "float32" else BF16_TOLERANCE,
            "shape": [args.batch, n], "frames": cfg.num_frames(n), "dtype": args.dtype,
            "num_layers": cfg.num_layers}
