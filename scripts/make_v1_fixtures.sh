#!/usr/bin/env bash
# Regenerates the safestructures 1.0.0 fixture files in tests/data/v1 with the real 1.0.0 release, installed in its
# own virtual environment (.venv-v1, made by scripts/v1_venv.sh).
# Not part of the test run: the generated files are committed, so CI needs no old release.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/v1_venv.sh
.venv-v1/bin/python tests/data/v1/generate.py tests/data/v1
