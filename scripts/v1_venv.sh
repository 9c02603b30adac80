#!/usr/bin/env bash
# Creates .venv-v1: the safestructures 1.0.0 release with numpy and torch only (1.0.0 fails to import beside a current
# jax), for the v1 fixtures (scripts/make_v1_fixtures.sh) and the benchmark's 1.0.0 baseline (bench/run.sh).
# Idempotent: does nothing when .venv-v1 already imports 1.0.0.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv-v1/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('safestructures') != '1.0.0')" 2>/dev/null; then
  echo "v1_venv: creating .venv-v1 (safestructures 1.0.0)"
  "${PYTHON:-python3}" -m venv .venv-v1
  # pip warns about every package missing from the machine's local mirrors; those warnings are noise here.
  .venv-v1/bin/python -m pip install -q --disable-pip-version-check "safestructures==1.0.0" "numpy<2.5" "torch==2.13.0" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
fi
