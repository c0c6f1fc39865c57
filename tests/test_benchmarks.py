"""The benchmark scripts run end to end (CPU smoke sizes) and print well-formed JSON lines.

Timings are printed, never asserted (benchmarks/README policy); these tests only check that a script still runs
after the code under it changed, and that its lines carry the fields the results tables are built from.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run_benchmark(script: str, *args: str) -> list[dict]:
    # One CPU device, as a user runs it (the test session's XLA_FLAGS fake 8 devices; batch 2 cannot split 8 ways).
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_backend_optimization_level=0")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
    for line in lines:
        assert {"metric", "value", "unit", "device", "config"} <= set(line), line
    return lines


@pytest.mark.slow
def test_p2e_step_benchmark_smoke():
    lines = _run_benchmark("p2e_step.py", "--smoke", "--batch", "2", "--seq", "192")
    by = {x["metric"]: x for x in lines}
    assert set(by) == {"p2e_phase3_step_time", "p2e_phase3_samples_per_s", "p2e_phase3_mfu",
                       "p2e_phase3_model_tflops"}
    assert by["p2e_phase3_step_time"]["value"] > 0 and by["p2e_phase3_samples_per_s"]["value"] > 0
    cfg = by["p2e_phase3_step_time"]["config"]
    assert cfg["batch"] == 2 and cfg["seq"] == 192 and cfg["preset"] == "tiny"
    assert cfg["model_flops_per_step"] > 0 and 0 < cfg["loss"] < 20   # a real step ran: finite cross-entropy
    assert by["p2e_phase3_mfu"]["value"] is None   # CPU: no known peak, so no MFU rather than a made-up one
    # With precomputed frozen-backbone features the compiled step holds no CLIP / face encoder / HuBERT.
    cached = {x["metric"]: x for x in _run_benchmark("p2e_step.py", "--smoke", "--batch", "2", "--seq", "192",
                                                     "--cached-features")}["p2e_phase3_step_time"]["config"]
    assert cached["cached_features"] and not cfg["cached_features"]
    assert 0 < cached["model_flops_per_step"] < cfg["model_flops_per_step"]
