#!/usr/bin/env bash
# bf16 mixed precision against fp32 and against PyTorch's CPU bf16 autocast, one thread each, in
# one run (docs/precision.md §5):
#
#   bench/bf16_compare.sh [CONFIG] [ROUNDS]     (default configs/bench-small.toml, 3 rounds)
#   env: FOLDMOE_BIN (default ./build/foldmoe), PYTHON (default .venv/bin/python, needs torch)
#
# Per round: foldmoe fp32, foldmoe bf16, PyTorch fp32 eager, PyTorch bf16 autocast (best round of
# each is reported). Peaks measured in the same run: foldmoe's fp32 and bf16 GEMM peaks (the MFU
# denominators of `foldmoe bench`), torch's fp32 and bf16 matmul on 1024^3, and the instruction
# peaks of one core (fp32 FMA vs AVX512-BF16 vdpbf16ps; bench/bf16_peak.c). Prints ONE JSON line.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:-configs/bench-small.toml}
ROUNDS=${2:-3}
FOLDMOE_BIN=${FOLDMOE_BIN:-./build/foldmoe}
PYTHON=${PYTHON:-.venv/bin/python}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
source scripts/openblas-env.sh

die() { echo "bf16_compare.sh: error: $*" >&2; exit 1; }
[[ -f "$CONFIG" ]] || die "config '$CONFIG' not found"
[[ -x "$FOLDMOE_BIN" ]] || die "foldmoe binary '$FOLDMOE_BIN' not found; run scripts/build.sh first or set FOLDMOE_BIN"
"$PYTHON" -c "import torch" 2>/dev/null || die "'$PYTHON' cannot import torch; run scripts/python-env.sh or set PYTHON"
last_json() { grep -E '^\s*\{' | tail -n 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
peak_json='{}'
if gcc -O2 -mavx512f bench/bf16_peak.c -o "$tmp/bf16_peak" 2>/dev/null && "$tmp/bf16_peak" > "$tmp/peak.json" 2>/dev/null; then
  peak_json=$(cat "$tmp/peak.json")
else
  echo "bf16_compare.sh: no AVX-512 / AVX512-BF16 instruction peak on this CPU (skipped)" >&2
fi

for r in $(seq 1 "$ROUNDS"); do
  for p in fp32 bf16; do
    echo "bf16_compare.sh: round $r foldmoe $p" >&2
    "$FOLDMOE_BIN" bench --config "$CONFIG" --train.precision=$p | last_json >> "$tmp/foldmoe_$p.jsonl"
  done
  for p in fp32 bf16; do
    echo "bf16_compare.sh: round $r pytorch $p" >&2
    flag=(); [[ $p == bf16 ]] && flag=(--autocast-bf16)
    "$PYTHON" bench/torch_peer.py --config "$CONFIG" --threads 1 "${flag[@]}" | last_json >> "$tmp/torch_$p.jsonl"
  done
done

"$PYTHON" - "$CONFIG" "$tmp" "$peak_json" <<'PY'
import json, sys, time
import torch
cfg, tmp, peak = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
torch.set_num_threads(1)

def best(name):
    rows = [json.loads(l) for l in open(f"{tmp}/{name}.jsonl") if l.strip()]
    return max(rows, key=lambda d: d["tokens_per_s"])

def torch_matmul_gflops(dtype, n=1024, reps=5):
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    t = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        t = min(t, time.perf_counter() - t0)
    return 2 * n ** 3 / t / 1e9

fm32, fmbf, pt32, ptbf = best("foldmoe_fp32"), best("foldmoe_bf16"), best("torch_fp32"), best("torch_bf16")
out = {
    "config": cfg,
    "foldmoe_fp32": {k: fm32[k] for k in ("tokens_per_s", "mfu", "peak_gflops")},
    "foldmoe_bf16": {k: fmbf[k] for k in ("tokens_per_s", "mfu", "peak_gflops")},
    "pytorch_fp32": {"tokens_per_s": pt32["tokens_per_s"]},
    "pytorch_bf16_autocast": {"tokens_per_s": ptbf["tokens_per_s"]},
    "bf16_over_fp32": round(fmbf["tokens_per_s"] / fm32["tokens_per_s"], 3),
    "bf16_over_pytorch_bf16": round(fmbf["tokens_per_s"] / ptbf["tokens_per_s"], 3),
    "fp32_over_pytorch_fp32": round(fm32["tokens_per_s"] / pt32["tokens_per_s"], 3),
    "torch_matmul_gflops": {"fp32": round(torch_matmul_gflops(torch.float32), 1),
                            "bf16": round(torch_matmul_gflops(torch.bfloat16), 1)},
    "instruction_peak_gflops": peak,
    "torch": torch.__version__,
}
print(json.dumps(out))
PY
