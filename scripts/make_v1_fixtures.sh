#!/usr/bin/env bash
# Regenerates the safestructures 1.0.0 fixture files in tests/data/v1 with the real 1.0.0 release, installed in its
# own virtual environment (.venv-v1) with numpy and torch only: 1.0.0 fails to import beside a current jax.
# Not part of the test run: the generated files are committed, so CI needs no old release.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv-v1/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv-v1
  .venv-v1/bin/python -m pip install -q --disable-pip-version-check "safestructures==1.0.0" "numpy<2.5" "torch==2.13.0"
fi
.venv-v1/bin/python tests/data/v1/generate.py tests/data/v1
