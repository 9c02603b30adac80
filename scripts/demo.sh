#!/usr/bin/env bash
# Sets everything up, then runs the README's demo (examples/demo.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
exec .venv/bin/python examples/demo.py "$@"
