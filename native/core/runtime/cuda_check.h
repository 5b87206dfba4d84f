// Turning CUDA runtime errors into lmk errors. Host code only.
#pragma once
#include <cuda_runtime_api.h>

#include "runtime/error.h"

namespace lmk {

inline void cuda_check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw_runtime_error(what, ": CUDA error ", cudaGetErrorName(status), " (", cudaGetErrorString(status), ")");
  }
}

// After a kernel launch: a bad configuration shows up here, at once.
inline void cuda_check_launch(const char* what) { cuda_check(cudaGetLastError(), what); }

}  // namespace lmk
