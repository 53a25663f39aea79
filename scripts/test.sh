#!/usr/bin/env bash
# The full test run: install what is missing, build (warnings are errors), run every test (unit,
# PyTorch reference, end-to-end) with ctest, then the unit tests again under ASan + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
scripts/install-deps.sh
scripts/build.sh release
(cd build && ctest --output-on-failure -j "${FOLDMOE_JOBS:-$(nproc)}")
scripts/build.sh asan
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  build-asan/foldmoe_unit_tests --gtest_brief=1
