#!/usr/bin/env bash
# Runs the tests of plain numpy arrays under numpy 1.x, whose C API the load uses under its 1.x ABI (numpy_view.cpp;
# pyproject allows numpy>=1.24): the package installed in .venv, beside numpy 1.26 in .venv-numpy1 of its own.
# Idempotent: .venv-numpy1 is made again only when requirements-numpy1.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv-numpy1/.requirements-numpy1.txt
if ! cmp -s requirements-numpy1.txt "$stamp"; then
  echo "test_numpy1: creating .venv-numpy1"
  rm -rf .venv-numpy1
  "${PYTHON:-python3}" -m venv .venv-numpy1
  .venv-numpy1/bin/python -m pip install -q --disable-pip-version-check -r requirements-numpy1.txt \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  cp requirements-numpy1.txt "$stamp"
fi
# The package as .venv has it installed, alone on the path (not .venv's numpy 2).
package=$(.venv/bin/python -c "import os, safestructures; print(os.path.dirname(safestructures.__file__))")
mkdir -p build/numpy1-path
ln -sfn "$package" build/numpy1-path/safestructures
PYTHONPATH=build/numpy1-path .venv-numpy1/bin/python -c "import numpy, sys; sys.exit(numpy.__version__[:2] != '1.')"
PYTHONPATH=build/numpy1-path .venv-numpy1/bin/python -m pytest -q -p no:cacheprovider \
  tests/python/test_numpy_view.py tests/python/test_golden_bytes.py tests/python/test_flat_roundtrip.py "$@"
