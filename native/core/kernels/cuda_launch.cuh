// The one way a kernel is launched and dynamic shared memory is declared, so
// the same .cu source builds with nvcc and, with LMK_CUDA_EMULATED defined, as
// plain C++ against the emulated CUDA backend (docs/cuda.md, "Emulated CUDA").
//
//   launch(kernel, grid, block, shared_bytes, stream, args...)
//       nvcc: kernel<<<grid, block, shared_bytes, stream>>>(args...)
//   LMK_DYNAMIC_SHARED(float, smem);
//       nvcc: extern __shared__ float smem[]
//
// Errors are checked as before, with cuda_check_launch after the launch.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#ifdef LMK_CUDA_EMULATED
// Defines lmk::emulator::launch (same signature) and LMK_DYNAMIC_SHARED.
#include "emulator/launch.h"
#else
#define LMK_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

namespace lmk::kernels {

template <typename... KernelArgs, typename... Args>
void launch(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
            Args&&... args) {
#ifdef LMK_CUDA_EMULATED
  lmk::emulator::launch(kernel, grid, block, shared_bytes, stream, std::forward<Args>(args)...);
#else
  // clang-format off
  kernel<<<grid, block, shared_bytes, stream>>>(std::forward<Args>(args)...);
  // clang-format on
#endif
}

}  // namespace lmk::kernels
