// Embedding on CUDA (see embedding.h): the forward is one thread per output
// element; the backward one thread per column walking the ids in order.
#include <cuda_runtime.h>

#include <type_traits>

#include "kernels/checks/index_check.h"
#include "kernels/cuda_grid.h"
#include "kernels/cuda_launch.cuh"
#include "kernels/elementwise/float_dispatch.h"
#include "kernels/embedding/embedding.h"
#include "math/compute_type.h"
#include "runtime/cuda_check.h"

namespace lmk::kernels {
namespace {

constexpr int kThreads = kGridThreads;  // grid_for (kernels/cuda_grid.h) assumes it

template <typename T>
__global__ void forward_kernel(EmbeddingParams p, const T* weight, T* out) {
  const int64_t total = p.n * p.D;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    int64_t i = e / p.D, d = e % p.D;
    int32_t id = p.ids[i];
    if (id < 0 || id >= p.V) {
      if (d == 0)
        atomicMin(reinterpret_cast<unsigned long long*>(p.first_bad_index), static_cast<unsigned long long>(i));
      out[e] = T{};
    } else {
      out[e] = weight[static_cast<int64_t>(id) * p.D + d];
    }
  }
}

// acc[v, d] (zeroed) += gOut[i, d] for i in order; one thread per column d.
template <typename T>
__global__ void backward_columns_kernel(EmbeddingParams p, const T* gout, float* acc) {
  for (int64_t d = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; d < p.D; d += int64_t(gridDim.x) * blockDim.x) {
    for (int64_t i = 0; i < p.n; ++i) {
      int32_t id = p.ids[i];
      if (id < 0 || id >= p.V) {
        if (d == 0)
          atomicMin(reinterpret_cast<unsigned long long*>(p.first_bad_index), static_cast<unsigned long long>(i));
        continue;
      }
      acc[static_cast<int64_t>(id) * p.D + d] += load_compute(gout, i * p.D + d);
    }
  }
}

template <typename T>
__global__ void round_kernel(int64_t n, const float* acc, T* out) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    store_compute(out, e, acc[e]);
  }
}

}  // namespace

size_t embedding_backward_workspace_bytes_cuda(const EmbeddingParams& p) {
  return p.dtype == DType::Float32 ? 0 : static_cast<size_t>(p.V * p.D) * sizeof(float);
}

void embedding_forward_cuda(const EmbeddingParams& p, void* stream) {
  if (p.D == 0) {
    index_check_cuda(p.ids, p.n, p.V, p.first_bad_index, stream);  // no columns, ids still checked
    return;
  }
  if (p.n == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  dispatch_float<false>(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(forward_kernel<T>, grid_for(p.n * p.D), kThreads, 0, s, p, static_cast<const T*>(p.weight),
           static_cast<T*>(p.out));
  });
  cuda_check_launch("embedding");
}

void embedding_backward_cuda(const EmbeddingParams& p, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  const int64_t total = p.V * p.D;
  float* acc = p.dtype == DType::Float32 ? static_cast<float*>(p.gweight) : static_cast<float*>(p.workspace);
  if (total > 0)
    cuda_check(cudaMemsetAsync(acc, 0, static_cast<size_t>(total) * sizeof(float), s), "embeddingBackward");
  dispatch_float<false>(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (p.D > 0) {
      launch(backward_columns_kernel<T>, grid_for(p.D), kThreads, 0, s, p, static_cast<const T*>(p.gout), acc);
    } else {
      index_check_cuda(p.ids, p.n, p.V, p.first_bad_index, stream);  // no columns, ids still checked
    }
    if (!std::is_same_v<T, float> && total > 0) {
      launch(round_kernel<T>, grid_for(total), kThreads, 0, s, total, acc, static_cast<T*>(p.gweight));
    }
  });
  cuda_check_launch("embeddingBackward");
}

}  // namespace lmk::kernels
