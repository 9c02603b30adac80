#!/usr/bin/env bash
# Fuzzes the C++ core with libFuzzer (fuzz_container, fuzz_schema, fuzz_strict_json, fuzz_recording, fuzz_file_api), the
# Python load(bytes) path with atheris
# (fuzz_load), and loads of files built by the schema grammar with atheris (fuzz_structure: refs, keys, views, dtypes;
# each input checked against a time and memory budget), everything built with clang++-14 under AddressSanitizer +
# UndefinedBehaviorSanitizer into build/fuzz.
# First replays every saved input under tests/fuzz/regressions/<target>/, then fuzzes each target for FUZZ_SECONDS
# (default 20) on a scratch copy of its seed corpus (tests/fuzz/corpus/<target>/). Exits non-zero on any crash,
# sanitizer report, unexpected exception, hang (-timeout), memory blow-up (-rss_limit_mb, -malloc_limit_mb) or, for
# fuzz_structure, an input over its budget (STRUCTURE_FUZZ_SECONDS=5 s, STRUCTURE_FUZZ_MB=512 MB). Needs scripts/setup.sh
# to have run (clang-14, the .venv with atheris).
#
# Long runs: FUZZ_SECONDS=3600 bash scripts/fuzz.sh
# A crash leaves its input under build/fuzz/artifacts/<target>/: copy it to tests/fuzz/regressions/<target>/ so that
# every later run replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

seconds=${FUZZ_SECONDS:-20}
build=build/fuzz
fuzz=tests/fuzz
libfuzzer_targets=(fuzz_container fuzz_schema fuzz_strict_json fuzz_recording fuzz_file_api)
atheris_targets=(fuzz_load fuzz_structure)
all_targets=("${libfuzzer_targets[@]}" "${atheris_targets[@]}")
limits=(-timeout=10 -rss_limit_mb=2048)
options=("${limits[@]}" -max_len=4096 -print_final_stats=1 -dict="$fuzz/fuzz.dict")
sanitize="-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all"
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

echo "fuzz: building the targets in $build"
cmake -S "$fuzz" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$build" -j2 >/dev/null
# The extension module, sanitized and coverage-instrumented (vptr checks need a C++ UBSan runtime Python lacks),
# staged with the Python sources in build/fuzz/pkg; the module only loads with build/fuzz/asan_with_fuzzer.so
# preloaded.
cmake -S . -B "$build/python" -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=Debug \
  -DSAFESTRUCTURES_BUILD_PYTHON=ON -DPython_EXECUTABLE="$PWD/.venv/bin/python" \
  -Dnanobind_DIR="$(python -m nanobind --cmake_dir)" \
  -DCMAKE_CXX_FLAGS="$sanitize -fno-sanitize=vptr -D_GLIBCXX_ASSERTIONS" >/dev/null
cmake --build "$build/python" --target _core -j2 >/dev/null
rm -rf "$build/pkg"
mkdir -p "$build/pkg"
cp -r python/safestructures "$build/pkg/"
cp "$build"/python/_core.*.so "$build/pkg/safestructures/"

# Runs a target with libFuzzer arguments "$@"; the atheris one is Python with the sanitized package.
run() {
  local target=$1
  shift
  case $target in
    fuzz_load)
      ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" PYTHONPATH="$build/pkg" LD_PRELOAD="$PWD/$build/asan_with_fuzzer.so" \
        python "$fuzz/fuzz_load.py" "$@" ;;
    fuzz_structure)
      # -malloc_limit_mb: one allocation past 512 MB is a finding (the default is the RSS limit).
      ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" PYTHONPATH="$build/pkg" LD_PRELOAD="$PWD/$build/asan_with_fuzzer.so" \
        python "$fuzz/fuzz_structure.py" -malloc_limit_mb=512 "$@" ;;
    *) ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} "$build/$target" "$@" ;;
  esac
}

failed=0
mkdir -p "$build/logs"
# Replays the saved inputs of a target in one process; when one fails (libFuzzer stops at the first), it is reported
# and the replay goes on with the inputs after it, so that one run lists every failing input.
replay() {
  local target=$1 log=$build/logs/$1.regressions.log bad total rest
  shift
  total=$#
  rest=("$@")
  bad=()
  : >"$log"
  while ((${#rest[@]})); do
    if run "$target" "${limits[@]}" "${rest[@]}" >"$log.part" 2>&1; then
      cat "$log.part" >>"$log"
      break
    fi
    cat "$log.part" >>"$log"
    local culprit
    culprit=$(sed -n 's/^Running: //p' "$log.part" | tail -n 1)
    bad+=("$culprit")
    echo "fuzz: $target: regression input FAILS: $culprit"
    grep -E "FUZZ BUG|ERROR: |SUMMARY|runtime error|Timeout|out-of-memory|Uncaught|^[A-Za-z]*Error" "$log.part" | head -n 6 | sed 's/^/    /'
    # The inputs after the culprit (it is not among them if the log did not name it: stop then).
    local i next=()
    for ((i = 0; i < ${#rest[@]}; i++)); do
      if [ "${rest[$i]}" = "$culprit" ]; then next=("${rest[@]:$((i + 1))}"); break; fi
    done
    rest=("${next[@]}")
  done
  rm -f "$log.part"
  if ((${#bad[@]})); then
    echo "fuzz: $target: ${#bad[@]} of $total regression inputs FAIL (log: $log)"
    failed=1
  else
    echo "fuzz: $target: $total regression inputs pass"
  fi
}
for target in "${all_targets[@]}"; do
  inputs=()
  if [ -d "$fuzz/regressions/$target" ]; then
    while IFS= read -r -d '' file; do inputs+=("$file"); done \
      < <(find "$fuzz/regressions/$target" -type f ! -name '*.md' ! -name '.*' -print0 | sort -z)
  fi
  ((${#inputs[@]})) || continue
  if [ "$target" = fuzz_structure ]; then
    # The regression inputs are also loaded with framework="torch" (torch's import is too slow for fuzzing).
    STRUCTURE_FUZZ_TORCH=1 replay "$target" "${inputs[@]}"
  else
    replay "$target" "${inputs[@]}"
  fi
done

# Fuzzes one target for $seconds on a scratch copy of its corpus; the log goes to build/fuzz/logs/<target>.log.
fuzz_target() {
  local target=$1 work=$build/run/$1
  rm -rf "$work" "$build/artifacts/$target"
  mkdir -p "$work" "$build/artifacts/$target"
  cp "$fuzz/corpus/$target/"* "$work/"
  run "$target" "${options[@]}" -max_total_time="$seconds" -artifact_prefix="$build/artifacts/$target/" "$work" \
    >"$build/logs/$target.log" 2>&1
}

report() {
  local target=$1 rc=$2 log=$build/logs/$1.log runs
  runs=$(awk '/stat::number_of_executed_units:/ {print $2}' "$log" | tail -n 1)
  if [ "$rc" -eq 0 ]; then
    echo "fuzz: $target: ${runs:-?} executions in ${seconds}s, no crash"
  else
    echo "fuzz: $target: FAILED (exit $rc) after ${runs:-?} executions; log: $log; input(s):"
    find "$build/artifacts/$target" -type f | sed 's/^/  /'
    grep -E "FUZZ BUG|ERROR: |runtime error|Uncaught|Traceback|Error|^ +#[0-9]+ 0x" "$log" | head -n 40 || tail -n 40 "$log"
    failed=1
  fi
}

# The libFuzzer targets share the machine's cores, then the atheris pair runs.
echo "fuzz: fuzzing ${libfuzzer_targets[*]} for ${seconds}s each, side by side"
pids=()
for target in "${libfuzzer_targets[@]}"; do
  fuzz_target "$target" &
  pids+=($!)
done
for i in "${!libfuzzer_targets[@]}"; do
  rc=0
  wait "${pids[$i]}" || rc=$?
  report "${libfuzzer_targets[$i]}" "$rc"
done
# Then the two atheris targets, side by side.
echo "fuzz: fuzzing ${atheris_targets[*]} (atheris) for ${seconds}s each, side by side"
pids=()
for target in "${atheris_targets[@]}"; do
  fuzz_target "$target" &
  pids+=($!)
done
for i in "${!atheris_targets[@]}"; do
  rc=0
  wait "${pids[$i]}" || rc=$?
  report "${atheris_targets[$i]}" "$rc"
done

exit "$failed"
