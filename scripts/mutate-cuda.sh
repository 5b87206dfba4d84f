#!/usr/bin/env bash
# Mutation check of the emulated CUDA tests (docs/cuda.md, "Barrier
# mutations"): does removing one __syncthreads(), or loosening one bounds
# guard, make `scripts/test-cpp.sh emulate` fail? Each mutation is applied
# alone to a scratch git worktree of HEAD under /tmp (never to this tree),
# the emulated tests are rebuilt (incrementally) and run in the thread orders
# forward, reverse and random plus a capped-grid run, and a markdown table is
# printed: location, mutation, caught, by what. A mutation that no order
# catches then runs the test binary of its kernel family in a sanitizer
# build: ThreadSanitizer for a removed barrier, AddressSanitizer for a
# bounds guard ("yes (TSan)", "yes (ASan)").
# LMK_MUTATE_ORDERS=0 runs only that stage; LMK_MUTATE_SANITIZE=0 skips it.
#
#   scripts/mutate-cuda.sh [regex]     only the mutations whose location matches
#
# Only the tests' CUDA cases run (LMK_TEST_FILTER=cuda unless set otherwise):
# the CPU cases cannot see a CUDA kernel's mutation. Needs the CUDA headers
# and the emulated build (LMK_CUDA=EMULATE); no GPU. About 1 to 3 minutes per
# mutation on 2 cores (the FAM header recompiles four files).
set -uo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
filter="${1:-.}"
scratch="$(mktemp -d /tmp/lmk-mutate.XXXXXX)"
log_dir="$scratch.logs"
mkdir -p "$log_dir"

cleanup() {
  git -C "$repo" worktree remove --force "$scratch" >/dev/null 2>&1 || rm -rf "$scratch"
  git -C "$repo" worktree prune >/dev/null 2>&1 || true
}
trap cleanup EXIT
git worktree add --detach "$scratch" HEAD >/dev/null 2>&1 || {
  echo "mutate-cuda: cannot create the scratch worktree $scratch" >&2
  exit 1
}
[[ -e "$repo/node_modules" ]] && ln -s "$repo/node_modules" "$scratch/node_modules"

# The loosened bounds guards (off by one): file | text (its first occurrence) |
# replacement | what it breaks.
bounds_mutations=(
  "native/core/kernels/norm/norm_cuda.cu|if (threadIdx.x < width) tree|if (threadIdx.x <= width) tree|block_sum reads tree[2·width], past the tree at width 128"
  "native/core/kernels/matmul/matmul_cuda.cu|if (i < p.M && j < p.N) store_compute|if (i <= p.M && j < p.N) store_compute|tiled GEMM stores row M (the next batch's row 0, or past the end)"
  "native/core/kernels/matmul/matmul_cuda.cu|(gi < p.M && gk < p.K)|(gi < p.M && gk <= p.K)|tiled GEMM loads A column K (multiplied by B's zero row K)"
  "native/core/kernels/fam/fam_cuda_tiled.cuh|tile[r * ld + d] = r < n ?|tile[r * ld + d] = r <= n ?|FAM load_tile loads row n of a partial tile (rows >= n must be 0)"
  "native/core/kernels/losses/cross_entropy_cuda.cu|i < p.rows; i += int64_t(gridDim.x) * blockDim.x) {|i <= p.rows; i += int64_t(gridDim.x) * blockDim.x) {|cross-entropy count pre-pass reads labels[rows]"
  "native/core/kernels/wkv4/wkv4_cuda.cu|if (c >= C) return;|if (c > C) return;|WKV4 reduce writes gTimeDecay[C], gTimeFirst[C] (one past the end)"
  "native/core/kernels/elementwise/elementwise_cuda.cu|i < (n); i += int64_t(gridDim.x)|i <= (n); i += int64_t(gridDim.x)|every elementwise grid-stride loop touches element n"
)

# Runs the emulated tests in the scratch tree.
run_tests() {
  local out="$1"
  # ccache paths relative to /tmp: the scratch build reuses this tree's objects.
  # LMK_TEST_TRIM_LARGE (default 1 here): without the 32 003-token loss case,
  # which only repeats the V = 4099 case's kernels at a minute per order.
  (cd "$scratch" && CCACHE_BASEDIR="$(dirname "$scratch")" LMK_TEST_FILTER="${LMK_TEST_FILTER-cuda}" \
    LMK_TEST_TRIM_LARGE="${LMK_TEST_TRIM_LARGE-1}" LMK_BUILD_JOBS="${LMK_BUILD_JOBS:-2}" \
    timeout 3600 bash scripts/test-cpp.sh emulate) >"$out" 2>&1
}

# What failed: the failing tests, the thread order of that run, and the first
# diagnostic worth quoting (the emulator's, a sanitizer's, a test CHECK's, or
# the digest comparison across orders).
caught_by() {
  local out="$1" rc="$2" order tests diag
  order=$(grep -E '^=== emulated CUDA' "$out" | tail -1 | sed -E 's/.*thread order //; s/ .*//')
  tests=$(sed -n '/The following tests FAILED/,$p' "$out" | grep -oE '[a-z0-9_]+_test' | sort -u | paste -sd, -)
  diag=$(grep -m1 -E '^lmk emulated CUDA: |differ between thread orders|AddressSanitizer|runtime error:|ThreadSanitizer|FAILED [^ ]+:[0-9]+|error:' "$out" |
    sed -E 's/^[[:space:]]+//; s/^lmk //; s/\|/\//g' | cut -c1-200)
  [[ -z "$diag" ]] && diag="exit status $rc"
  echo "${tests:+$tests, }order $order: $diag"
}

# The sanitizer stage, for a mutation that no thread order caught: the test
# binary that launches the mutated file's kernels, run once (random order) in
# a sanitizer build of the emulated tests. A removed barrier goes to
# ThreadSanitizer (each emulated CUDA thread a TSan fiber, __syncthreads a
# release/acquire), which reports a shared-memory write and another thread's
# access with no barrier between them whatever the order; a loosened bounds
# guard goes to AddressSanitizer, which reports the access one past the end.
test_for_family() {
  case "$1" in
    *fam*) echo fam_test ;;
    *losses*) echo losses_test ;;
    *wkv4*) echo wkv4_test ;;
    *) echo dense_test ;;
  esac
}
run_sanitized() { # KIND (tsan|asan) FILE OUT
  local kind="$1" file="$2" out="$3" test generator=() options env
  test=$(test_for_family "$file")
  command -v ninja >/dev/null && generator=(-G Ninja)
  if [[ "$kind" == tsan ]]; then
    options=(-DLMK_TSAN=ON)
    env=(TSAN_OPTIONS=halt_on_error=1 LMK_NUM_THREADS=2)
  else
    options=(-DLMK_SANITIZE=ON)
    env=(ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1)
  fi
  (cd "$scratch" && export CCACHE_BASEDIR="$(dirname "$scratch")" &&
    cmake -S . -B "build-emulate-$kind" "${generator[@]}" -DLMK_CUDA=EMULATE -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      "${options[@]}" >/dev/null &&
    cmake --build "build-emulate-$kind" -j "${LMK_BUILD_JOBS:-2}" --target "$test" >/dev/null &&
    echo "=== emulated CUDA (build-emulate-$kind): thread order random:1 ($test)" &&
    env "${env[@]}" LMK_EMU_ORDER=random:1 LMK_TEST_FILTER="${LMK_TEST_FILTER-cuda}" LMK_TEST_TRIM_LARGE=1 \
      timeout 3600 "build-emulate-$kind/$test") >"$out" 2>&1
}

results=()
# mutate FILE LOCATION DESCRIPTION APPLY-COMMAND...
mutate() {
  local file="$1" location="$2" description="$3"
  shift 3
  [[ "$location" =~ $filter ]] || return 0
  "$@" || {
    results+=("| $location | $description | (not applied) | the text was not found |")
    return 0
  }
  if git -C "$scratch" diff --quiet -- "$file"; then
    results+=("| $location | $description | (not applied) | the text was not found |")
    return 0
  fi
  local name out caught="no" by="-" rc
  name=$(echo "$location" | tr '/:' '__')
  out="$log_dir/$name.log"
  rc=0
  if [[ "${LMK_MUTATE_ORDERS:-1}" != 0 ]]; then
    run_tests "$out"
    rc=$?
  fi
  if ((rc != 0)); then
    caught="yes"
    by=$(caught_by "$out" "$rc")
  elif [[ "${LMK_MUTATE_SANITIZE:-1}" != 0 ]]; then
    # The unmutated tree passes these builds in CI (`scripts/test-cpp.sh
    # emulate-asan`, `emulate-tsan`); a report counts when it names the mutated file.
    local kind=asan label=ASan summary
    [[ "$description" == *__syncthreads* ]] && kind=tsan label=TSan
    run_sanitized "$kind" "$file" "$out.$kind"
    rc=$?
    summary=$(grep -m1 -oE 'SUMMARY: (Thread|Address|UndefinedBehavior)Sanitizer: .*' "$out.$kind" |
      sed -E "s|$scratch/||g; s/\|/\//g")
    if [[ "$summary" == *"$(basename "$file")"* ]]; then
      caught="yes ($label)"
      by="$(test_for_family "$file"), order random:1: $(echo "$summary" | cut -c1-200)"
    elif ((rc != 0)); then
      caught="yes ($label build)"
      by=$(caught_by "$out.$kind" "$rc")
    fi
  fi
  results+=("| $location | $description | $caught | $by |")
  echo "mutate-cuda: $location: $description: caught $caught ${by:+($by)}" >&2
  git -C "$scratch" checkout -- "$file"
}

remove_barrier() { # FILE N: deletes the N-th __syncthreads() of the file
  N="$2" perl -0pi -e 'my $n = 0; s/__syncthreads\(\);/++$n == $ENV{N} ? "\/* mutation: barrier removed *\/;" : $&/ge' \
    "$scratch/$1"
}
replace_first() { # FILE FROM TO: the first FROM (plain text) becomes TO
  FROM="$2" TO="$3" perl -0pi -e 's/\Q$ENV{FROM}\E/$ENV{TO}/' "$scratch/$1"
}

echo "mutate-cuda: baseline (no mutation) in $scratch" >&2
if [[ "${LMK_MUTATE_ORDERS:-1}" != 0 ]] && ! run_tests "$log_dir/baseline.log"; then
  echo "mutate-cuda: the unmutated emulated tests fail; see $log_dir/baseline.log" >&2
  tail -20 "$log_dir/baseline.log" >&2
  exit 1
fi

while IFS= read -r file; do
  n=0
  while IFS=: read -r line _; do
    n=$((n + 1))
    mutate "$file" "$file:$line" "\`__syncthreads()\` removed" remove_barrier "$file" "$n"
  done < <(grep -n '__syncthreads();' "$scratch/$file")
done < <(cd "$scratch" && git ls-files 'native/core/*.cu' 'native/core/*.cuh' | sort)

for spec in "${bounds_mutations[@]}"; do
  IFS='|' read -r file from to why <<<"$spec"
  line=$(grep -nF -m1 -- "$from" "$scratch/$file" | cut -d: -f1)
  mutate "$file" "$file:${line:-?}" "\`$from\` → \`$to\`: $why" replace_first "$file" "$from" "$to"
done

echo "| location | mutation | caught | by what |"
echo "|---|---|---|---|"
printf '%s\n' "${results[@]}"
echo "mutate-cuda: logs in $log_dir" >&2
