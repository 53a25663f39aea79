#!/usr/bin/env bash
# Throughput comparison: foldmoe (C++) vs the PyTorch-eager peer on the same config, one thread.
#
#   bench/compare.sh [CONFIG]            (default configs/bench-small.toml)
#   env: FOLDMOE_BIN (default ./build/foldmoe), PYTHON (default /usr/bin/python3, needs torch),
#        PEER_ARGS (extra torch_peer.py flags, e.g. "--warmup 2 --steps 5")
#
# Both programs run with OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1. Each prints one JSON line
# (foldmoe: tokens_per_s, mfu, ...; peer: tokens_per_s, step_ms, flops_per_token, threads).
# Prints ONE JSON line on stdout:
#   {"config": ..., "foldmoe": {...}, "pytorch": {...}, "ratio_tokens_per_s": foldmoe/pytorch}
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:-configs/bench-small.toml}
FOLDMOE_BIN=${FOLDMOE_BIN:-./build/foldmoe}
PYTHON=${PYTHON:-/usr/bin/python3}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
source scripts/openblas-env.sh  # OpenBLAS's AVX-512/AVX2 kernels where it does not know the CPU

die() { echo "compare.sh: error: $*" >&2; exit 1; }
[[ -f "$CONFIG" ]] || die "config '$CONFIG' not found"
[[ -x "$FOLDMOE_BIN" ]] || die "foldmoe binary '$FOLDMOE_BIN' not found or not executable; build it first (cmake -B build && cmake --build build -j) or set FOLDMOE_BIN"
"$PYTHON" -c "import torch" 2>/dev/null || die "'$PYTHON' cannot import torch; set PYTHON to an interpreter with torch (e.g. /usr/bin/python3)"

last_json() { grep -E '^\s*\{' | tail -n 1; }

echo "compare.sh: running $FOLDMOE_BIN bench --config $CONFIG" >&2
fm_out=$("$FOLDMOE_BIN" bench --config "$CONFIG") || die "'$FOLDMOE_BIN bench' failed (exit $?)"
fm_json=$(printf '%s\n' "$fm_out" | last_json) || true
[[ -n "$fm_json" ]] || die "'$FOLDMOE_BIN bench' printed no JSON line; output was:
$fm_out"
echo "foldmoe: $fm_json" >&2

echo "compare.sh: running bench/torch_peer.py --config $CONFIG ${PEER_ARGS:-}" >&2
# shellcheck disable=SC2086
pt_out=$("$PYTHON" bench/torch_peer.py --config "$CONFIG" --threads 1 ${PEER_ARGS:-}) || die "torch peer failed"
pt_json=$(printf '%s\n' "$pt_out" | last_json) || true
[[ -n "$pt_json" ]] || die "torch peer printed no JSON line"
echo "pytorch: $pt_json" >&2

"$PYTHON" - "$CONFIG" "$fm_json" "$pt_json" <<'PY'
import json, sys
cfg, fm, pt = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
for name, d in (("foldmoe", fm), ("pytorch", pt)):
    if not isinstance(d.get("tokens_per_s"), (int, float)) or d["tokens_per_s"] <= 0:
        sys.exit(f"compare.sh: error: {name} JSON has no positive tokens_per_s: {d}")
print(json.dumps({"config": cfg, "foldmoe": fm, "pytorch": pt,
                  "ratio_tokens_per_s": round(fm["tokens_per_s"] / pt["tokens_per_s"], 4)}))
PY
