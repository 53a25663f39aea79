#!/usr/bin/env bash
# The main job: build if needed, then train the built-in tiny MoE on the embedded synthetic corpus.
# Extra arguments go to `foldmoe train` (e.g. --train.steps=100).
set -euo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
scripts/install-deps.sh
scripts/build.sh release >/dev/null
exec build/foldmoe train "$@"
