// Norms on CUDA. Forward and gx: one block per row (grid-stride over rows);
// each thread sums a strided part of the row, then a fixed shared-memory tree
// folds the block's partial sums (deterministic). gWeight/gBias: one thread
// per column walks the rows in order. Float arithmetic as on the CPU.
#include <cuda_runtime.h>

#include "kernels/cuda_grid.h"
#include "kernels/cuda_launch.cuh"
#include "kernels/elementwise/float_dispatch.h"
#include "kernels/norm/norm.h"
#include "math/compute_type.h"
#include "runtime/cuda_check.h"

namespace lmk::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535 * 4;

// Σ over the block of each thread's value, fixed tree; every thread gets it.
__device__ float block_sum(float value, float* tree) {
  tree[threadIdx.x] = value;
  __syncthreads();
  for (int width = kThreads / 2; width >= 1; width /= 2) {
    if (threadIdx.x < width) tree[threadIdx.x] += tree[threadIdx.x + width];
    __syncthreads();
  }
  float total = tree[0];
  __syncthreads();
  return total;
}

template <typename T>
__global__ void norm_forward_kernel(NormParams p) {
  __shared__ float tree[kThreads];
  const T* w = static_cast<const T*>(p.weight);
  const T* b = static_cast<const T*>(p.bias);
  const float inv_c = 1.0f / static_cast<float>(p.C);
  for (int64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
    const T* x = static_cast<const T*>(p.x) + r * p.C;
    T* y = static_cast<T*>(p.y) + r * p.C;
    float mean = 0, rstd;
    if (p.rms) {
      float s = 0;
      for (int64_t i = threadIdx.x; i < p.C; i += kThreads) {
        float v = load_compute(x, i);
        s += v * v;
      }
      rstd = rsqrtf(block_sum(s, tree) * inv_c + static_cast<float>(p.eps));
    } else {
      float s = 0;
      for (int64_t i = threadIdx.x; i < p.C; i += kThreads) s += load_compute(x, i);
      mean = block_sum(s, tree) * inv_c;
      float q = 0;
      for (int64_t i = threadIdx.x; i < p.C; i += kThreads) {
        float d = load_compute(x, i) - mean;
        q += d * d;
      }
      rstd = rsqrtf(block_sum(q, tree) * inv_c + static_cast<float>(p.eps));
      if (threadIdx.x == 0) static_cast<float*>(p.mean)[r] = mean;
    }
    if (threadIdx.x == 0) static_cast<float*>(p.rstd)[r] = rstd;
    for (int64_t i = threadIdx.x; i < p.C; i += kThreads) {
      float v = (load_compute(x, i) - mean) * rstd;
      if (w) v = v * load_compute(w, i);
      if (b) v = v + load_compute(b, i);
      store_compute(y, i, v);
    }
  }
}

template <typename T>
__global__ void norm_backward_rows_kernel(NormParams p) {
  __shared__ float tree[kThreads];
  const T* w = static_cast<const T*>(p.weight);
  const float inv_c = 1.0f / static_cast<float>(p.C);
  for (int64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
    const T* x = static_cast<const T*>(p.x) + r * p.C;
    const T* gy = static_cast<const T*>(p.gy) + r * p.C;
    T* gx = static_cast<T*>(p.gx) + r * p.C;
    const float mean = p.rms ? 0.0f : static_cast<const float*>(p.mean)[r];
    const float rstd = static_cast<const float*>(p.rstd)[r];
    float sg = 0, sgx = 0;
    for (int64_t i = threadIdx.x; i < p.C; i += kThreads) {
      float g = load_compute(gy, i);
      if (w) g = g * load_compute(w, i);
      sg += g;
      sgx += g * ((load_compute(x, i) - mean) * rstd);
    }
    const float mean_g = p.rms ? 0.0f : block_sum(sg, tree) * inv_c;
    const float mean_gx = block_sum(sgx, tree) * inv_c;
    for (int64_t i = threadIdx.x; i < p.C; i += kThreads) {
      float g = load_compute(gy, i);
      if (w) g = g * load_compute(w, i);
      float xhat = (load_compute(x, i) - mean) * rstd;
      store_compute(gx, i, rstd * (g - mean_g - xhat * mean_gx));
    }
  }
}

template <typename T>
__global__ void norm_backward_params_kernel(NormParams p) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < p.C; i += int64_t(gridDim.x) * blockDim.x) {
    float sw = 0, sb = 0;
    for (int64_t r = 0; r < p.rows; ++r) {
      float g = load_compute(static_cast<const T*>(p.gy), r * p.C + i);
      const float mean = p.rms ? 0.0f : static_cast<const float*>(p.mean)[r];
      const float rstd = static_cast<const float*>(p.rstd)[r];
      sw += g * ((load_compute(static_cast<const T*>(p.x), r * p.C + i) - mean) * rstd);
      sb += g;
    }
    if (p.gweight) store_compute(static_cast<T*>(p.gweight), i, sw);
    if (p.gbias) store_compute(static_cast<T*>(p.gbias), i, sb);
  }
}

unsigned row_grid(int64_t rows) { return looping_grid(rows, kMaxBlocks); }

}  // namespace

void norm_forward_cuda(const NormParams& p, void* stream) {
  if (p.rows == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  dispatch_float<false>(p.dtype, [&](auto tag) {
    launch(norm_forward_kernel<typename decltype(tag)::type>, row_grid(p.rows), kThreads, 0, s, p);
  });
  cuda_check_launch("norm forward");
}

void norm_backward_cuda(const NormParams& p, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  dispatch_float<false>(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (p.rows > 0) launch(norm_backward_rows_kernel<T>, row_grid(p.rows), kThreads, 0, s, p);
    if ((p.gweight || p.gbias) && p.C > 0) {
      launch(norm_backward_params_kernel<T>, looping_grid((p.C + kThreads - 1) / kThreads, INT32_MAX), kThreads, 0, s,
             p);
    }
  });
  cuda_check_launch("norm backward");
}

}  // namespace lmk::kernels
