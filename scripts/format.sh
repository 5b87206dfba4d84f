#!/usr/bin/env bash
# Formats the sources: clang-format for C++/CUDA, Prettier for TS/JS/JSON.
#   scripts/format.sh           rewrite files in place
#   scripts/format.sh --check   fail (exit 1) if any file is not formatted (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"
mapfile -t native_files < <(git ls-files -co --exclude-standard 'native/*.cc' 'native/*.h' 'native/*.cu' 'native/*.cuh')
if [[ "$mode" == --check ]]; then
  clang-format --dry-run --Werror "${native_files[@]}"
  npx prettier --check --log-level warn .
else
  clang-format -i "${native_files[@]}"
  npx prettier --write --log-level warn .
fi
