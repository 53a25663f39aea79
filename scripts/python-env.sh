#!/usr/bin/env bash
# Creates or updates the test virtual environment .venv (Debian's python3 with its system packages,
# plus the pinned reference packages of scripts/requirements-test.txt). Idempotent: does nothing
# when .venv already holds exactly these requirements. Prints nothing on success.
set -euo pipefail
cd "$(dirname "$0")/.."
req=scripts/requirements-test.txt
req_nodeps=scripts/requirements-test-nodeps.txt
stamp=.venv/.requirements.sha256
want=$(cat "$req" "$req_nodeps" | sha256sum | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$req" ||
  { echo "python-env: pip could not install $req (is PyPI reachable? a pip cache in ~/.cache/pip helps offline)" >&2; exit 1; }
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r "$req_nodeps" ||
  { echo "python-env: pip could not install $req_nodeps (is PyPI reachable?)" >&2; exit 1; }
echo "$want" > "$stamp"
