#!/usr/bin/env bash
# One whole-model reference test: foldmoe dumps one step (params, batch, loss, every gradient) for
# CONFIG, and the independent PyTorch model (foldmoe_ref.py, float64) must agree to rel 1e-4.
# Usage: check_config.sh FOLDMOE_BINARY CONFIG
set -euo pipefail
bin=$1 config=$2
PY=${PYTHON:-/usr/bin/python3}
"$PY" -c "import torch" || { echo "check_config.sh: $PY cannot import torch (install python3-torch)" >&2; exit 1; }
out=$(mktemp --suffix=.safetensors)
trap 'rm -f "$out"' EXIT
"$bin" dump-reference --config "$config" --out "$out"
"$PY" "$(dirname "$0")/compare_dump.py" "$out"
