#!/usr/bin/env bash
# The full test run: install what is missing, build (warnings are errors), run every test (unit,
# mpirun parallel and layout parity, PyTorch reference, end-to-end) with ctest, then the unit tests
# again under ASan + UBSan. Ends with one summary line "tests: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
scripts/install-deps.sh
scripts/python-env.sh
scripts/build.sh release
# OpenBLAS's AVX-512 (or AVX2) kernels where OpenBLAS 0.3.21 does not know the CPU and would run its
# generic ones: the suite then takes about half the time (the whole suite passes with both).
source scripts/openblas-env.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
(cd build && ctest --output-on-failure -j "${FOLDMOE_JOBS:-$(nproc)}") | tee "$log"
ctest_rc=${PIPESTATUS[0]}
set -e
ctest_total=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\2/p' "$log" | tail -n 1)
ctest_failed=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\1/p' "$log" | tail -n 1)
if [ "$ctest_rc" != 0 ]; then
  echo "tests: $((ctest_total - ctest_failed)) passed, $ctest_failed failed"
  exit 1
fi
scripts/build.sh asan
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  build-asan/foldmoe_unit_tests --gtest_brief=1 | tee "$log"
asan_passed=$(sed -n 's/.*PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
echo "tests: $((ctest_total + asan_passed)) passed, 0 failed"
