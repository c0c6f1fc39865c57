#!/usr/bin/env bash
# The GPU benchmark suite in one go: JAX vs PyTorch at the reference's shapes, JSON lines per benchmark.
#
#   bash benchmarks/gpu_suite.sh OUT_DIR [SECONDS]
#   SMOKE=1 bash benchmarks/gpu_suite.sh OUT_DIR     # the same plumbing on CPU with the tiny shapes
#
# Runs, most important first, each under its own time limit and never past SECONDS in all (default 560), so a
# short lease still returns the headline figures: the phase-3 train step (JAX, then transformers + peft), the
# same step on cached frozen-backbone features, the Qwen2.5-1.5B decoder train step (JAX, then PyTorch), and
# decoding. Each benchmark writes OUT_DIR/NAME.jsonl (its JSON lines) and OUT_DIR/NAME.err (its log); the last
# lines printed are a table of every metric. A benchmark that fails or runs out of time is reported, not fatal.
# On one H200 (README, 2026-11-28) the first three took 142 / 23 / > 80 s and decoding > 80 s (compiling the
# real-size encoders and generation loop), hence their limits.
set -u
out=${1:?usage: gpu_suite.sh OUT_DIR [SECONDS]}
budget=${2:-560}
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
start=$SECONDS
"$py" - <<'EOF' 2>&1 | tee "$out/versions.txt"
import importlib, platform
for m in ("jax", "jaxlib", "flax", "optax", "orbax.checkpoint", "grain", "torch", "transformers", "peft"):
    try:
        print(m, getattr(importlib.import_module(m), "__version__", "?"))
    except Exception as e:  # a missing package is reported by the benchmark that needs it
        print(m, "MISSING", type(e).__name__)
print("python", platform.python_version())
EOF
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>&1 |
  tee -a "$out/versions.txt"

bench() {  # NAME LIMIT_S CMD...: run CMD under min(LIMIT_S, what is left of the budget)
  local name=$1 limit=$2; shift 2
  local left=$((budget - (SECONDS - start)))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 20 ]; then echo "== $name: skipped (budget spent)"; return; fi
  echo "== $name (limit ${limit}s): $*"
  local t0=$SECONDS
  timeout "$limit" "$py" "$@" > "$out/$name.jsonl" 2> "$out/$name.err"
  local rc=$?
  echo "   rc=$rc in $((SECONDS - t0)) s"
  [ "$rc" -ne 0 ] && tail -n 4 "$out/$name.err" | cut -c1-300
  return "$rc"
}

if [ -n "${SMOKE:-}" ]; then
  real=(--smoke); tp=(--smoke --allow-no-peft); lm=(--smoke); gen=(--smoke --torch)
else
  real=(--preset nano_emox --dtype bfloat16 --steps 8 --warmup 2); tp=("${real[@]}")
  lm=(--preset qwen2_5_1_5b --seq 2048 --batch 8 --dtype bfloat16 --steps 8 --warmup 2)
  gen=(--preset nano_emox --dtype bfloat16 --torch)
fi
# A fused-attention failure (cuDNN version / shape constraints) must not cost the headline: retry with XLA's.
bench jax_p2e 200 benchmarks/p2e_step.py "${real[@]}" || [ $? -eq 124 ] ||
  bench jax_p2e_xla 120 benchmarks/p2e_step.py "${real[@]}" --attention xla
bench torch_p2e 90 benchmarks/torch_p2e_step.py "${tp[@]}"
bench jax_p2e_cached 150 benchmarks/p2e_step.py "${real[@]}" --cached-features
bench jax_lm 70 benchmarks/lm_train.py "${lm[@]}" --remat dots_no_batch
bench torch_lm 50 benchmarks/torch_lm_train.py "${lm[@]}"
bench generate 150 benchmarks/generate.py "${gen[@]}"

echo "== table (metric value unit | device)"
cat "$out"/*.jsonl 2>/dev/null | "$py" -c '
import json, sys
for line in sys.stdin:
    if line.startswith("{"):
        r = json.loads(line)
        print("%-40s %12s %-10s | %s" % (r["metric"], r["value"], r["unit"], r["device"]))
'
echo "suite done in $((SECONDS - start)) s"
