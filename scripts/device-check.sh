#!/usr/bin/env bash
# The GPU check (docs/cuda.md). Run from the repository root on the
# device machine (CUDA 13, CMake, ninja; no Node): builds the native core with
# CUDA for sm_90, runs the C++ tests (CUDA against the CPU backend and float64
# references) and the C++ benchmarks, writes full logs under $OUT and prints a
# short table last.
#   scripts/device-check.sh [test-regex]   e.g. 'wkv4' to run only those tests/benches
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/device-out}"
mkdir -p "$OUT"
filter="${1:-}"
summary="$OUT/summary.txt"
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$OUT/gpu.txt" 2>&1 || true
note "gpu: $(cat "$OUT/gpu.txt" 2>/dev/null | head -1)"

start=$SECONDS
if ! cmake -S . -B build-device -G Ninja -DCMAKE_BUILD_TYPE=Release -DLMK_CUDA=ON -DLMK_CUDA_ARCHS=90 \
      -DLMK_PTXAS_VERBOSE=ON > "$OUT/configure.log" 2>&1 \
   || ! cmake --build build-device -j "$(nproc)" > "$OUT/build.log" 2>&1; then
  note "build: FAILED (see build.log)"; tail -30 "$OUT/build.log"; exit 1
fi
note "build: ok in $((SECONDS - start)) s"
grep -E "registers|spill" "$OUT/build.log" | sed 's/^ptxas info *: //' > "$OUT/ptxas.txt" || true

ctest_args=(--test-dir build-device --output-on-failure --timeout 300)
[[ -n "$filter" ]] && ctest_args+=(-R "$filter")
ctest "${ctest_args[@]}" > "$OUT/ctest.log" 2>&1
tests_rc=$?
note "tests: $(grep -E 'tests passed|tests failed' "$OUT/ctest.log" | tail -1) (rc $tests_rc)"

: > "$OUT/bench.log"
for bench in build-device/*_bench; do
  [[ -x "$bench" ]] || continue
  [[ -n "$filter" && "$bench" != *"$filter"* && "$bench" != *copy_bench ]] && continue
  echo "### $bench" >> "$OUT/bench.log"
  timeout 300 "$bench" >> "$OUT/bench.log" 2>&1 || echo "(exit $?)" >> "$OUT/bench.log"
done

echo
echo "==== benches"
grep -vE "^###" "$OUT/bench.log" | tail -40
echo "==== summary"
cat "$summary"
exit $tests_rc
