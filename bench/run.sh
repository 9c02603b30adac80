#!/usr/bin/env bash
# The benchmark, from a fresh clone: sets up .venv (scripts/setup.sh), the bench-only packages (bench/requirements.txt)
# and .venv-v1 (safestructures 1.0.0, scripts/v1_venv.sh), then runs bench/bench.py with any arguments given
# (--quick for a smoke run, --help for the rest). Results go to bench/results (results.md, results.json, chart.png).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
stamp=.venv/.bench-requirements.txt
if ! cmp -s bench/requirements.txt "$stamp"; then
  echo "bench: installing bench/requirements.txt"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r bench/requirements.txt \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  cp bench/requirements.txt "$stamp"
fi
bash scripts/v1_venv.sh
exec .venv/bin/python bench/bench.py "$@"
