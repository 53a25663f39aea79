#!/usr/bin/env bash
# The main job: build if needed, then train the built-in tiny MoE on the embedded synthetic corpus
# with a folded layout on 4 ranks: attention TP2 x DP2, experts EP4 x ETP1 (EP folded over TP x DP).
# Rank 0 prints the progress. Extra arguments go to `foldmoe train` (e.g. --train.steps=100).
# FOLDMOE_NP=1 runs one process (then drop the layout flags, or keep them: they need 4 ranks).
# A second run into a run directory with checkpoints continues from the latest (docs/run-directory.md):
# pass --overwrite to start over, or another --train.run_dir.
set -euo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
scripts/install-deps.sh
scripts/build.sh release >/dev/null
source scripts/openblas-env.sh
np=${FOLDMOE_NP:-4}
rc=0
if [ "$np" = 1 ]; then
  build/foldmoe train "$@" || rc=$?
else
  mpirun --allow-run-as-root --oversubscribe --mca mpi_yield_when_idle 1 --mca btl self,vader -np "$np" \
    build/foldmoe train --parallel.tp=2 --parallel.ep=4 --parallel.etp=1 "$@" || rc=$?
fi
echo "To put foldmoe on your PATH: cmake --install build --prefix ~/.local (installs ~/.local/bin/foldmoe)"
exit "$rc"
