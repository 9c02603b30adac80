#!/usr/bin/env bash
# Runs every test: the C++ core's GoogleTest suite (plain, then under ASan+UBSan) through ctest, then pytest.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

run_ctest() {
  local dir=$1
  shift
  cmake -S . -B "$dir" -G Ninja -DSAFESTRUCTURES_BUILD_TESTS=ON -DSAFESTRUCTURES_BUILD_PYTHON=OFF "$@" >/dev/null
  cmake --build "$dir" -j2
  ctest --test-dir "$dir" --output-on-failure -j2
}

echo "== C++ tests (Release)"
run_ctest build/cpp-release -DCMAKE_BUILD_TYPE=Release
echo "== C++ tests (AddressSanitizer + UndefinedBehaviorSanitizer)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_ctest build/cpp-asan -DCMAKE_BUILD_TYPE=Debug -DSAFESTRUCTURES_SANITIZE=ON
echo "== Fuzzing (libFuzzer + atheris, ${FUZZ_SECONDS:-20}s per target)"
bash scripts/fuzz.sh
echo "== Python tests"
python -m pytest tests/python "$@"
echo "== numpy 1.x (arrays through numpy's C API under its 1.x ABI)"
bash scripts/test_numpy1.sh
