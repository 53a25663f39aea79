#!/usr/bin/env bash
# Configures and builds foldmoe. Usage: scripts/build.sh [release|asan]  (default release)
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
jobs=${FOLDMOE_JOBS:-$(nproc)}
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/foldmoe-ccache}
# Paths relative to the checkout, so that other checkouts (worktrees, CI clones) share cache hits.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
case "$kind" in
  release) dir=build; flags=(-DCMAKE_BUILD_TYPE=Release -DFOLDMOE_WERROR=ON) ;;
  asan) dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS=-O1 -DFOLDMOE_SANITIZE=ON -DFOLDMOE_WERROR=ON) ;;
  *) echo "build.sh: unknown build kind '$kind' (use release or asan)" >&2; exit 2 ;;
esac
if [ ! -f "$dir/build.ninja" ]; then
  cmake -S . -B "$dir" -G Ninja "${flags[@]}" >/dev/null
fi
if [ "$kind" = asan ]; then
  # The sanitizer build exists to run the unit tests: build just them (and what they link).
  cmake --build "$dir" -j "$jobs" --target foldmoe_unit_tests
else
  cmake --build "$dir" -j "$jobs"
fi
