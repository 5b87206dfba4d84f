#include <cuda_runtime.h>

#include "kernels/checks/index_check.h"
#include "kernels/cuda_grid.h"
#include "kernels/cuda_launch.cuh"
#include "runtime/cuda_check.h"

namespace lmk::kernels {
namespace {

__global__ void index_check_kernel(const int32_t* values, int64_t n, int64_t limit,
                                   unsigned long long* first_bad_index) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int32_t v = values[i];
    if (v < 0 || v >= limit) atomicMin(first_bad_index, static_cast<unsigned long long>(i));
  }
}

}  // namespace

void index_check_cuda(const int32_t* values, int64_t n, int64_t limit, int64_t* first_bad_index, void* stream) {
  if (n == 0) return;
  int64_t blocks = (n + 255) / 256;
  unsigned grid = looping_grid(blocks, 4096);
  launch(index_check_kernel, grid, 256, 0, static_cast<cudaStream_t>(stream), values, n, limit,
         reinterpret_cast<unsigned long long*>(first_bad_index));
  cuda_check_launch("index check");
}

}  // namespace lmk::kernels
