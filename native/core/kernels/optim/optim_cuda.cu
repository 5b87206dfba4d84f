// AdamW and gradient clipping on CUDA (see optim.h). Clipping: per gradient,
// one block per chunk of kChunk elements sums squares (fixed tree) into a
// double slot of the workspace; a one-thread kernel adds the slots in order,
// writes the norm and the coefficient; a scaling kernel per gradient reads the
// coefficient from device memory. No host round trip, no float atomics.
#include <cuda_runtime.h>

#include <type_traits>

#include "kernels/cuda_grid.h"
#include "kernels/cuda_launch.cuh"
#include "kernels/elementwise/float_dispatch.h"
#include "kernels/optim/optim.h"
#include "math/adamw_math.h"
#include "math/compute_type.h"
#include "runtime/cuda_check.h"

namespace lmk::kernels {
namespace {

constexpr int kThreads = kGridThreads;  // grid_for (kernels/cuda_grid.h) assumes it
constexpr int64_t kChunk = 16384;

template <typename T, typename M>
__global__ void adamw_kernel(int64_t n, AdamwScalars<float> s, T* param, const T* grad, M* m, M* v) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float pi = load_compute(param, i), mi = load_compute(m, i), vi = load_compute(v, i);
    adamw_update(s, load_compute(grad, i), &pi, &mi, &vi);
    store_compute(param, i, pi);
    store_compute(m, i, mi);
    store_compute(v, i, vi);
  }
}

template <typename T>
__global__ void sum_squares_kernel(const T* g, int64_t n, double* slots) {
  __shared__ float tree[kThreads];
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  for (int64_t c = blockIdx.x; c < chunks; c += gridDim.x) {
    int64_t end = (c + 1) * kChunk < n ? (c + 1) * kChunk : n;
    float acc = 0;
    for (int64_t i = c * kChunk + threadIdx.x; i < end; i += kThreads) {
      float v = load_compute(g, i);
      acc += v * v;
    }
    tree[threadIdx.x] = acc;
    __syncthreads();
    for (int width = kThreads / 2; width >= 1; width /= 2) {
      if (threadIdx.x < width) tree[threadIdx.x] += tree[threadIdx.x + width];
      __syncthreads();
    }
    // No barrier before the next chunk's tree: only thread 0 reads tree[0] here,
    // and only thread 0 writes tree[0] there, after this read.
    if (threadIdx.x == 0) slots[c] = static_cast<double>(tree[0]);
  }
}

__global__ void finish_norm_kernel(const double* slots, int64_t count, float max_norm, float* norm, float* coef) {
  double total = 0;
  for (int64_t i = 0; i < count; ++i) total += slots[i];
  float value = static_cast<float>(sqrt(total));
  *norm = value;
  *coef = max_norm / (value + 1e-6f);
}

template <typename T>
__global__ void scale_kernel(T* g, int64_t n, const float* coef) {
  float c = *coef;
  if (c >= 1.0f) return;  // min(1, coef) = 1
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    store_compute(g, i, load_compute(g, i) * c);
  }
}

int64_t total_chunks(const GradClipParams& p) {
  int64_t total = 0;
  for (int64_t n : p.sizes) total += (n + kChunk - 1) / kChunk;
  return total;
}

}  // namespace

void adamw_cuda(const AdamwParams& p, void* stream) {
  if (p.n == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  const AdamwScalars<float> sc = adamw_scalars<float>(p);
  dispatch_float<false>(p.param_dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* param = static_cast<T*>(p.param);
    const T* grad = static_cast<const T*>(p.grad);
    if (p.moment_dtype == p.param_dtype) {
      launch(adamw_kernel<T, T>, grid_for(p.n), kThreads, 0, s, p.n, sc, param, grad, static_cast<T*>(p.exp_avg),
             static_cast<T*>(p.exp_avg_sq));
    } else if constexpr (!std::is_same_v<T, float>) {
      launch(adamw_kernel<T, float>, grid_for(p.n), kThreads, 0, s, p.n, sc, param, grad,
             static_cast<float*>(p.exp_avg), static_cast<float*>(p.exp_avg_sq));
    }
  });
  cuda_check_launch("optim.AdamW.step");
}

size_t grad_clip_workspace_bytes_cuda(const GradClipParams& p) {
  return static_cast<size_t>(total_chunks(p)) * sizeof(double) + sizeof(double);
}

void grad_clip_cuda(const GradClipParams& p, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  double* slots = static_cast<double*>(p.workspace);
  const int64_t count = total_chunks(p);
  float* coef = reinterpret_cast<float*>(slots + count);
  dispatch_float<false>(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    int64_t offset = 0;
    for (size_t t = 0; t < p.grads.size(); ++t) {
      int64_t chunks = (p.sizes[t] + kChunk - 1) / kChunk;
      if (chunks > 0) {
        unsigned grid = looping_grid(chunks, 65535);
        launch(sum_squares_kernel<T>, grid, kThreads, 0, s, static_cast<const T*>(p.grads[t]), p.sizes[t],
               slots + offset);
      }
      offset += chunks;
    }
    launch(finish_norm_kernel, 1, 1, 0, s, slots, count, static_cast<float>(p.max_norm), static_cast<float*>(p.norm),
           coef);
    for (size_t t = 0; t < p.grads.size(); ++t) {
      if (p.sizes[t] > 0)
        launch(scale_kernel<T>, grid_for(p.sizes[t]), kThreads, 0, s, static_cast<T*>(p.grads[t]), p.sizes[t], coef);
    }
  });
  cuda_check_launch("clipGradNorm");
}

}  // namespace lmk::kernels
