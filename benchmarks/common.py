"""Shared benchmark helpers: JSON-line output, device names, peak FLOP/s and the decoder FLOP count.

MFU convention (MaxText's, ``jax-practice.md`` §7.1): model FLOPs per trained token =
``6 × matmul params`` (every weight matrix incl. the LM head; the embedding lookup is not a matmul, but with
tied embeddings the same matrix is the LM head and counts once) ``+ 6 × layers × seq × heads × head_dim``
(causal attention: QKᵀ and AV, each ``2·T·N·H`` FLOPs per token forward at full length, halved for the causal
mask, ×3 for forward + backward). Rematerialisation is NOT counted (MFU, not HFU). MFU = that ÷ time ÷ peak.
"""

from __future__ import annotations

import json
import statistics
import sys
from typing import Any

# Dense (no sparsity) peak FLOP/s per chip, by compute dtype. H100/H200 SXM: 989 TFLOP/s bf16, 494 TF32.
PEAK_FLOPS: dict[str, dict[str, float]] = {
    "H200": {"bfloat16": 989e12, "float16": 989e12, "float32": 494e12},
    "H100": {"bfloat16": 989e12, "float16": 989e12, "float32": 494e12},
    "A100": {"bfloat16": 312e12, "float16": 312e12, "float32": 156e12},
    "TPU v6": {"bfloat16": 918e12},
    "TPU v5p": {"bfloat16": 459e12},
    "TPU v5 lite": {"bfloat16": 197e12},
    "TPU v4": {"bfloat16": 275e12},
}


def peak_flops(device_kind: str, dtype: str, override_tflops: float | None = None) -> float | None:
    """Peak FLOP/s for a device name (substring match, e.g. "NVIDIA H100 80GB HBM3"); None when unknown (CPU)."""
    if override_tflops:
        return override_tflops * 1e12
    for key, table in PEAK_FLOPS.items():
        if key.lower() in device_kind.lower():
            return table.get(dtype)
    return None


def qwen2_matmul_params(vocab: int, hidden: int, layers: int, heads: int, kv_heads: int, head_dim: int,
                        intermediate: int) -> int:
    """Weights that take part in a matmul per token: attention q/k/v/o, SwiGLU gate/up/down, LM head."""
    attn = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
    mlp = 3 * hidden * intermediate
    return layers * (attn + mlp) + vocab * hidden


def lm_train_flops_per_token(matmul_params: int, layers: int, seq: int, heads: int, head_dim: int) -> float:
    """Training FLOPs per token: 6·N_matmul + causal attention 6·L·T·N·H (see module docstring)."""
    return 6.0 * matmul_params + 6.0 * layers * seq * heads * head_dim


def emit(metric: str, value: Any, unit: str, device: str, config: dict[str, Any]) -> None:
    """Print one JSON line ``{metric, value, unit, device, config}`` and flush."""
    print(json.dumps({"metric": metric, "value": value, "unit": unit, "device": device, "config": config}))
    sys.stdout.flush()


def summarize_steps(step_times: list[float]) -> dict[str, float]:
    """Median and spread of per-step wall times (seconds)."""
    return {"median_s": statistics.median(step_times), "min_s": min(step_times), "max_s": max(step_times)}


def report_lm(step_times: list[float], *, tokens_per_step: int, flops_per_token: float, device: str,
              peak: float | None, config: dict[str, Any], prefix: str = "lm_train") -> None:
    """Emit step time, tokens/s, model TFLOP/s and MFU (null when the device's peak is unknown)."""
    s = summarize_steps(step_times)
    tok_s = tokens_per_step / s["median_s"]
    model_flops = tok_s * flops_per_token
    cfg = dict(config, flops_per_token=flops_per_token, step_time_min_s=round(s["min_s"], 5),
               step_time_max_s=round(s["max_s"], 5), peak_flops=peak,
               flop_count="6*N_matmul + causal attention 6*L*T*N*H (no remat)")
    emit(f"{prefix}_step_time", round(s["median_s"] * 1e3, 3), "ms", device, cfg)
    emit(f"{prefix}_tokens_per_s", round(tok_s, 1), "tokens/s", device, cfg)
    emit(f"{prefix}_model_tflops", round(model_flops / 1e12, 4), "TFLOP/s", device, cfg)
    emit(f"{prefix}_mfu", None if peak is None else round(100.0 * model_flops / peak, 2), "%", device, cfg)
