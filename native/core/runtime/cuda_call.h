// LMK_CUDA_CALL(expr): calls a CUDA kernel launcher in builds with CUDA; in
// CPU-only builds the launcher does not exist, and the line throws instead
// (unreachable in practice: ops::empty already rejects CUDA devices there).
#pragma once
#include "runtime/error.h"

#ifdef LMK_WITH_CUDA
#define LMK_CUDA_CALL(...) __VA_ARGS__
#else
#define LMK_CUDA_CALL(...) ::lmk::throw_type_error("lmkernels was built without CUDA")
#endif
