#!/usr/bin/env bash
# Installs what the build, the demo and the tests need (Debian packages, a virtual environment, the package itself).
# Idempotent: a second run only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(g++ libsimdjson-dev libxxhash-dev libgtest-dev clang-14 libclang-rt-14-dev)
missing=()
for package in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# pip warns about every package missing from the machine's local mirrors; those warnings are noise here.
quiet_pip() { .venv/bin/python -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "${PYTHON:-python3}" -m venv .venv
fi
# Reinstall requirements only when the list changed since the last successful install.
stamp=.venv/.requirements-dev.txt
if ! cmp -s requirements-dev.txt "$stamp"; then
  echo "setup: installing Python requirements"
  quiet_pip install -q --disable-pip-version-check -r requirements-dev.txt
  cp requirements-dev.txt "$stamp"
fi

# The build directory persists (build/<wheel tag>), so this recompiles only what changed.
echo "setup: building and installing safestructures"
quiet_pip install -q --disable-pip-version-check --no-build-isolation --no-deps .
