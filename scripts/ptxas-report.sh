#!/usr/bin/env bash
# Per-kernel resource table from ptxas (docs/cuda.md, "Resource report"): builds
# the native core's CUDA objects with -DLMK_PTXAS_VERBOSE=ON (-Xptxas -v) for
# sm_90 in a scratch build directory and prints one markdown row per kernel,
# sorted by source file and kernel: registers, spill stores/loads (bytes),
# stack frame (bytes), static shared memory (bytes). Needs nvcc and ninja, no GPU.
# Dynamic shared memory is chosen at launch and is not in the table.
#   scripts/ptxas-report.sh [build-dir]        default build-ptxas
# Compare two trees: run it in each and diff the outputs.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build-ptxas}"
jobs="${LMK_BUILD_JOBS:-2}"
log="$dir/ptxas-build.log"

cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLMK_CUDA=ON -DLMK_CUDA_ARCHS=90 \
  -DLMK_PTXAS_VERBOSE=ON -DLMK_BUILD_TESTS=OFF >/dev/null
# ptxas reports only while compiling: drop the CUDA objects so every .cu is
# compiled (or its report replayed from ccache).
find "$dir" -name '*.cu.o' -delete
if ! cmake --build "$dir" --target lmk_core -j "$jobs" >"$log" 2>&1; then
  tail -30 "$log" >&2
  echo "ptxas-report: build failed (full log: $log)" >&2
  exit 1
fi

# ninja prints each finished command's status line, then that command's output,
# so a kernel belongs to the .cu file named last before it.
awk '
  /Building CUDA object/ {
    file = $NF; sub(/.*native\/core\//, "", file); sub(/\.o$/, "", file); next
  }
  /Compiling entry function/ {
    name = $0; sub(/^[^'\'']*'\''/, "", name); sub(/'\''.*$/, "", name)
    key = file "\t" name; entry[key] = 1; current = key; next
  }
  /Function properties for/ { props = file "\t" $NF; next }
  /bytes stack frame/ { stack[props] = $1; stores[props] = $5; loads[props] = $9; next }
  /Used [0-9]+ registers/ {
    regs[current] = $0; sub(/.*Used /, "", regs[current]); sub(/ registers.*/, "", regs[current])
    smem[current] = 0
    if (match($0, /[0-9]+ bytes smem/)) smem[current] = substr($0, RSTART, RLENGTH - 11)
    next
  }
  END {
    for (k in entry) {
      printf "%s\t%s\t%s\t%s\t%s\t%s\n", k, regs[k], stores[k] + 0, loads[k] + 0, stack[k] + 0, smem[k] + 0
    }
  }
' "$log" | c++filt | sed -e 's/lmk::kernels:://g' -e 's/(anonymous namespace):://g' -e 's/\tvoid /\t/' \
  | LC_ALL=C sort -t $'\t' -k1,1 -k2,2 >"$dir/ptxas-table.tsv"

count=$(wc -l <"$dir/ptxas-table.tsv")
if [[ "$count" -eq 0 ]]; then
  echo "ptxas-report: no kernels found in $log" >&2
  exit 1
fi
echo "| file | kernel | registers | spill stores | spill loads | stack | static shared |"
echo "|---|---|---:|---:|---:|---:|---:|"
awk -F '\t' '{ printf "| %s | `%s` | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7 }' "$dir/ptxas-table.tsv"
echo
echo "$count kernels (sm_90); full build log: $log" >&2
