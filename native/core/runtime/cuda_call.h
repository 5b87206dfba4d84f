// LMK_CUDA_CALL(expr): calls a CUDA kernel launcher in builds with CUDA; in
// CPU-only builds the launcher does not exist, and the line throws instead
// (unreachable in practice: ops::empty already rejects CUDA devices there).
#pragma once
#include "runtime/error.h"

#ifdef LMK_WITH_CUDA
#define LMK_CUDA_CALL(...) __VA_ARGS__
#else
// sizeof keeps the call unevaluated (no link dependency) while its arguments
// still count as used.
#define LMK_CUDA_CALL(...) \
  ((void)sizeof(((__VA_ARGS__), 0)), ::lmk::throw_type_error("lmkernels was built without CUDA"))
#endif
