#!/usr/bin/env bash
# Builds the native core without Node and runs the C++ tests (ctest):
#   build-cpp   release build, CUDA on when nvcc is found (LMK_CUDA_ARCHS, default 90 here)
#   build-asan  CPU-only build with -fsanitize=address,undefined
# Usage: scripts/test-cpp.sh [release|asan|all]   (default all)
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
jobs="${LMK_BUILD_JOBS:-$(nproc)}"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)

if [[ "$what" == release || "$what" == all ]]; then
  cmake -S . -B build-cpp "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DLMK_CUDA_ARCHS="${LMK_CUDA_ARCHS:-90}" >/dev/null
  cmake --build build-cpp -j "$jobs"
  ctest --test-dir build-cpp --output-on-failure
fi
if [[ "$what" == asan || "$what" == all ]]; then
  cmake -S . -B build-asan "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLMK_CUDA=OFF -DLMK_SANITIZE=ON >/dev/null
  cmake --build build-asan -j "$jobs"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure
fi
