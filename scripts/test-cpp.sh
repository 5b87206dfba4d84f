#!/usr/bin/env bash
# Builds the native core without Node and runs the C++ tests (ctest):
#   release        build-cpp: release build, CUDA on when nvcc is found (LMK_CUDA_ARCHS, default 90 here)
#   asan           build-asan: CPU-only build with -fsanitize=address,undefined
#   emulate        build-emulate: every .cu compiled by g++ against the emulated CUDA backend
#                  (LMK_CUDA=EMULATE, docs/cuda.md); the tests' CUDA cases run in three thread
#                  orders with bit-identical outputs required, then once with capped grids
#   emulate-asan   build-emulate-asan: the same with -fsanitize=address,undefined, one order
#   emulate-tsan   build-emulate-tsan: ThreadSanitizer, each emulated CUDA thread a TSan fiber
# Usage: scripts/test-cpp.sh [release|asan|emulate|emulate-asan|emulate-tsan|all]   (default all)
# LMK_EMU_SEED (default 1) seeds the random thread order.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
jobs="${LMK_BUILD_JOBS:-$(nproc)}"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
seed="${LMK_EMU_SEED:-1}"
asan_env=(ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1)

wants() { [[ "$what" == "$1" || "$what" == all ]]; }
# The emulated builds need the CUDA headers (not nvcc); `all` skips them, loudly, without.
cuda_headers=$(ls {"${CUDA_PATH:-/usr/local/cuda}","${CUDA_HOME:-/usr/local/cuda}"}/include/cuda_runtime_api.h 2>/dev/null | head -1 || true)
wants_emulated() {
  wants "$1" || return 1
  if [[ -z "$cuda_headers" && "$what" == all ]]; then
    echo "=== $1: SKIPPED, no CUDA headers (cuda_runtime_api.h) under \$CUDA_PATH or /usr/local/cuda"
    return 1
  fi
}

# Sums the per-kernel launch counts (LMK_EMU_STATS files) by kernel family.
print_launches() {
  local title="$1"
  shift
  echo "--- CUDA launches per kernel family ($title): family launches blocks threads kernels"
  cat "$@" | awk '{ l[$1] += $2; b[$1] += $3; t[$1] += $4; k[$1 " " substr($0, index($0, $5))] = 1 }
    END { for (f in l) { n = 0; for (x in k) if (index(x, f " ") == 1) n++; printf "  %-16s %8d %10d %12d %3d\n", f, l[f], b[f], t[f], n } }' |
    sort
}

# ctest in the given thread order, with digests of every CUDA output copied to
# the host (math_test has no CUDA case: it runs in the release and asan builds).
run_emulated() {
  local dir="$1" name="$2" order="$3"
  shift 3
  echo "=== emulated CUDA ($dir): thread order $order $*"
  env "$@" LMK_EMU_ORDER="$order" LMK_EMU_DIGEST="$PWD/$dir/emulation/digest-$name.txt" \
    LMK_EMU_STATS="$PWD/$dir/emulation/launches-$name.txt" ctest --test-dir "$dir" --output-on-failure -E '^math_test$'
}

# Every kernel family must have launched (the tests' CUDA cases ran, none skipped).
check_families() {
  local missing=()
  for family in ce_rows copy creation cross_entropy elementwise embedding fam index_check matmul norm optim orpo \
    reduce rope shape wkv4; do
    cat "$@" | awk -v f="$family" '$1 == f { found = 1 } END { exit !found }' || missing+=("$family")
  done
  if ((${#missing[@]})); then
    echo "no CUDA launch of kernel families: ${missing[*]} (were the CUDA cases skipped?)"
    return 1
  fi
}

# The outputs must not depend on the order in which threads and blocks run.
compare_digests() {
  local dir="$1" reference="$2"
  shift 2
  for other in "$@"; do
    if ! cmp -s "$dir/emulation/digest-$reference.txt" "$dir/emulation/digest-$other.txt"; then
      echo "CUDA outputs differ between thread orders $reference and $other (a race or an order dependence):"
      diff "$dir/emulation/digest-$reference.txt" "$dir/emulation/digest-$other.txt" | head -20
      return 1
    fi
  done
  echo "CUDA outputs bit-identical across thread orders: $reference $* ($(wc -l <"$dir/emulation/digest-$reference.txt") copies to the host)"
}

configure_emulated() {
  local dir="$1"
  shift
  cmake -S . -B "$dir" "${generator[@]}" -DLMK_CUDA=EMULATE "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  rm -rf "$dir/emulation"
  mkdir -p "$dir/emulation"
}

if wants release; then
  cmake -S . -B build-cpp "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DLMK_CUDA_ARCHS="${LMK_CUDA_ARCHS:-90}" >/dev/null
  cmake --build build-cpp -j "$jobs"
  ctest --test-dir build-cpp --output-on-failure
fi
if wants asan; then
  cmake -S . -B build-asan "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLMK_CUDA=OFF -DLMK_SANITIZE=ON >/dev/null
  cmake --build build-asan -j "$jobs"
  env "${asan_env[@]}" ctest --test-dir build-asan --output-on-failure
fi
if wants_emulated emulate; then
  configure_emulated build-emulate -DCMAKE_BUILD_TYPE=Release
  run_emulated build-emulate forward forward
  run_emulated build-emulate reverse reverse
  run_emulated build-emulate random "random:$seed"
  compare_digests build-emulate forward reverse random
  # Few blocks per launch, so grid-stride loops and multi-row blocks loop (the
  # large-vocabulary loss case, a minute of the run, is left to the orders above).
  run_emulated build-emulate capped "random:$seed" LMK_TEST_GRID_CAP=3 LMK_TEST_TRIM_LARGE=1
  print_launches "release build, 4 runs" build-emulate/emulation/launches-*.txt
  check_families build-emulate/emulation/launches-*.txt
fi
if wants_emulated emulate-asan; then
  configure_emulated build-emulate-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLMK_SANITIZE=ON
  run_emulated build-emulate-asan random "random:$seed" "${asan_env[@]}" LMK_TEST_GRID_CAP=3 LMK_TEST_TRIM_LARGE=1
  print_launches "ASan/UBSan build" build-emulate-asan/emulation/launches-*.txt
  check_families build-emulate-asan/emulation/launches-*.txt
fi
if wants_emulated emulate-tsan; then
  configure_emulated build-emulate-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLMK_TSAN=ON
  # The tests' CUDA cases only (LMK_TEST_FILTER): the kernels are what is checked here.
  run_emulated build-emulate-tsan random "random:$seed" TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    LMK_TEST_TRIM_LARGE=1 LMK_TEST_FILTER=cuda LMK_NUM_THREADS=2
  # ... and it must see a missing barrier: the emulator's own racy kernel.
  if LMK_EMU_EXPECT_RACE=1 LMK_TEST_FILTER=a_missing_barrier TSAN_OPTIONS=halt_on_error=1 \
    build-emulate-tsan/emulator_test >build-emulate-tsan/emulation/expected-race.txt 2>&1 ||
    ! grep -q "ThreadSanitizer: data race" build-emulate-tsan/emulation/expected-race.txt; then
    echo "ThreadSanitizer did not report the race of a kernel without its barrier"
    exit 1
  fi
  echo "ThreadSanitizer reports the race of a kernel without its barrier, as it must"
  print_launches "ThreadSanitizer build" build-emulate-tsan/emulation/launches-*.txt
fi
