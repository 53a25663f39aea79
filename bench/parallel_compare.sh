#!/usr/bin/env bash
# Data/expert-parallel scaling on 2 ranks, in one run, one thread per rank:
#   foldmoe 1 rank  |  foldmoe 2 ranks DP2 (experts replicated)  |  foldmoe 2 ranks DP2 + EP2
#   foldmoe 1 rank and DP2 + EP2 again with capacity factor 1.0 (the paper's benchmark setting)
#   PyTorch eager DDP (gloo) on 2 processes, same model and per-replica batch.
#   Pipeline: foldmoe 1 rank vs PP2 (1F1B) on the same 8 micro-batches of 4 sequences (strong
#   scaling: one replica, the same tokens per step; the ideal is 2x minus the bubble 1/(M+1)).
# Weak scaling: every replica runs the config's micro-batches, so 2 ranks process twice the tokens
# per step; the speedup is tokens/s(2 ranks) / tokens/s(1 rank). Prints one JSON line.
#   bench/parallel_compare.sh [CONFIG]      (default configs/bench-small.toml)
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:-configs/bench-small.toml}
BIN=${FOLDMOE_BIN:-./build/foldmoe}
PYTHON=${PYTHON:-/usr/bin/python3}
STEPS=${BENCH_STEPS:-4}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
die() { echo "parallel_compare.sh: error: $*" >&2; exit 1; }
[[ -x "$BIN" ]] || die "foldmoe binary '$BIN' not found; build it first (scripts/build.sh)"
"$PYTHON" -c "import torch.distributed" 2>/dev/null || die "'$PYTHON' cannot import torch.distributed"
MPI=(mpirun --allow-run-as-root --oversubscribe --mca btl self,vader -np 2)
last_json() { grep -E '^\s*\{' | tail -n 1; }

one=$("$BIN" bench --config "$CONFIG" --warmup 1 --steps "$STEPS" | last_json)
dp2=$("${MPI[@]}" "$BIN" bench --config "$CONFIG" --warmup 1 --steps "$STEPS" --parallel.ep=1 | last_json)
ep2=$("${MPI[@]}" "$BIN" bench --config "$CONFIG" --warmup 1 --steps "$STEPS" --parallel.ep=2 | last_json)
# The paper benchmarks with capacity factor 1 to remove load-imbalance jitter; EP is sensitive to
# it (a rank whose experts got more tokens makes the other wait), so measure EP2 that way too.
one_cf=$("$BIN" bench --config "$CONFIG" --warmup 1 --steps "$STEPS" --moe.capacity_factor=1.0 | last_json)
ep2_cf=$("${MPI[@]}" "$BIN" bench --config "$CONFIG" --warmup 1 --steps "$STEPS" --parallel.ep=2 --moe.capacity_factor=1.0 | last_json)
PIPE=(--train.micro_batch=4 --train.micro_batches=8)
one_m8=$("$BIN" bench --config "$CONFIG" --warmup 1 --steps "$STEPS" "${PIPE[@]}" | last_json)
pp2_m8=$("${MPI[@]}" "$BIN" bench --config "$CONFIG" --warmup 1 --steps "$STEPS" "${PIPE[@]}" --parallel.pp=2 | last_json)
ddp=$("$PYTHON" bench/torch_peer.py --config "$CONFIG" --threads 1 --ddp 2 --warmup 1 --steps "$STEPS" 2>/dev/null | last_json)
pt1=$("$PYTHON" bench/torch_peer.py --config "$CONFIG" --threads 1 --warmup 1 --steps "$STEPS" 2>/dev/null | last_json)

"$PYTHON" - "$one" "$dp2" "$ep2" "$ddp" "$pt1" "$one_cf" "$ep2_cf" "$one_m8" "$pp2_m8" <<'PY'
import json, sys
one, dp2, ep2, ddp, pt1, one_cf, ep2_cf, one_m8, pp2_m8 = (json.loads(x) for x in sys.argv[1:])
t = lambda j: j["tokens_per_s"]
print(json.dumps({
    "foldmoe_1rank": one, "foldmoe_dp2": dp2, "foldmoe_dp2_ep2": ep2, "pytorch_eager_1": pt1, "pytorch_ddp2": ddp,
    "speedup_dp2_over_1rank": round(t(dp2) / t(one), 3),
    "speedup_ep2_over_1rank": round(t(ep2) / t(one), 3),
    "foldmoe_1rank_cf1": one_cf, "foldmoe_dp2_ep2_cf1": ep2_cf,
    "speedup_ep2_cf1_over_1rank_cf1": round(t(ep2_cf) / t(one_cf), 3),
    "pytorch_ddp2_speedup": round(t(ddp) / t(pt1), 3),
    "foldmoe_dp2_over_pytorch_ddp2": round(t(dp2) / t(ddp), 3),
    "foldmoe_ep2_over_pytorch_ddp2": round(t(ep2) / t(ddp), 3),
    "foldmoe_1rank_m8": one_m8, "foldmoe_pp2_m8": pp2_m8,
    "speedup_pp2_over_1rank_same_batch": round(t(pp2_m8) / t(one_m8), 3)}))
PY
