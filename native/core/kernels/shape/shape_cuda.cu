// Copies on CUDA: one thread per output element (grid-stride), by element size.
#include <cuda_runtime.h>

#include "kernels/cuda_grid.h"
#include "kernels/cuda_launch.cuh"
#include "kernels/shape/shape.h"
#include "runtime/cuda_check.h"

namespace lmk::kernels {
namespace {

constexpr int kThreads = kGridThreads;  // grid_for (kernels/cuda_grid.h) assumes it

template <typename E>
__global__ void strided_copy_kernel(StridedLayout layout, int64_t n, const E* src, E* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    out[i] = src[layout_offset(layout, 0, i)];
  }
}

template <typename E>
__global__ void block_copy_kernel(int64_t rows, int64_t row_elems, int64_t src_stride, int64_t dst_stride, const E* src,
                                  E* dst) {
  int64_t n = rows * row_elems;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t r = i / row_elems, c = i % row_elems;
    dst[r * dst_stride + c] = src[r * src_stride + c];
  }
}

template <typename E>
void launch_strided(const StridedCopyParams& p, int64_t n, cudaStream_t s) {
  launch(strided_copy_kernel<E>, grid_for(n), kThreads, 0, s, p.layout, n, static_cast<const E*>(p.src),
         static_cast<E*>(p.out));
}

template <typename E>
void launch_block(const BlockCopyParams& p, cudaStream_t s) {
  launch(block_copy_kernel<E>, grid_for(p.rows * p.row_elems), kThreads, 0, s, p.rows, p.row_elems, p.src_stride,
         p.dst_stride, static_cast<const E*>(p.src), static_cast<E*>(p.dst));
}

}  // namespace

void strided_copy_cuda(const StridedCopyParams& p, void* stream) {
  int64_t n = p.layout.numel();
  if (n == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  switch (p.elem_size) {
    case 2: launch_strided<uint16_t>(p, n, s); break;
    case 8: launch_strided<uint64_t>(p, n, s); break;
    default: launch_strided<uint32_t>(p, n, s); break;
  }
  cuda_check_launch("strided copy");
}

void block_copy_cuda(const BlockCopyParams& p, void* stream) {
  if (p.rows == 0 || p.row_elems == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  switch (p.elem_size) {
    case 2: launch_block<uint16_t>(p, s); break;
    case 8: launch_block<uint64_t>(p, s); break;
    default: launch_block<uint32_t>(p, s); break;
  }
  cuda_check_launch("block copy");
}

}  // namespace lmk::kernels
