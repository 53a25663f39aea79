#!/usr/bin/env bash
# Runs every self-test of the PyTorch reference and the benchmark peer (CPU, ~20 s).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-/usr/bin/python3}
rc=0
for t in tests/reference/test_ref_worked_examples.py tests/reference/test_ref_vs_transformers.py \
         "tests/reference/make_fake_dump.py --selftest" \
         bench/test_peer_matches_ref.py; do
  echo "== $t"
  # shellcheck disable=SC2086
  $PY $t | tail -n 1 || rc=1
  [[ ${PIPESTATUS[0]} -eq 0 ]] || rc=1
done
exit $rc
