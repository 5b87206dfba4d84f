// CUDA creation kernels: one thread per element, grid-stride; the values come
// from the same host/device functions as the CPU kernels.
#include <cuda_runtime.h>

#include "kernels/creation/creation.h"
#include "kernels/creation/random_value.h"
#include "kernels/cuda_grid.h"
#include "kernels/cuda_launch.cuh"
#include "math/convert.h"
#include "runtime/cuda_check.h"
#include "runtime/dispatch.h"

namespace lmk::kernels {
namespace {

constexpr int kThreads = kGridThreads;  // grid_for (kernels/cuda_grid.h) assumes it

template <typename T>
__global__ void fill_kernel(T* out, int64_t n, T value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    out[i] = value;
  }
}

template <typename T>
__global__ void arange_kernel(T* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    store_from_double(out, i, static_cast<double>(i));
  }
}

template <typename T>
__global__ void random_kernel(T* out, int64_t n, RandomParams params) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    store_from_double(out, i, random_value(params, i));
  }
}

}  // namespace

void fill_cuda(void* data, DType dtype, int64_t n, double value, void* stream) {
  if (n == 0) return;
  dispatch_dtype(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T element;
    store_from_double(&element, 0, value);
    launch(fill_kernel<T>, grid_for(n), kThreads, 0, static_cast<cudaStream_t>(stream), static_cast<T*>(data), n,
           element);
  });
  cuda_check_launch("fill");
}

void arange_cuda(void* data, DType dtype, int64_t n, void* stream) {
  if (n == 0) return;
  dispatch_dtype(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(arange_kernel<T>, grid_for(n), kThreads, 0, static_cast<cudaStream_t>(stream), static_cast<T*>(data), n);
  });
  cuda_check_launch("arange");
}

void random_cuda(void* data, DType dtype, int64_t n, const RandomParams& params, void* stream) {
  if (n == 0) return;
  dispatch_dtype(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(random_kernel<T>, grid_for(n), kThreads, 0, static_cast<cudaStream_t>(stream), static_cast<T*>(data), n,
           params);
  });
  cuda_check_launch("random");
}

}  // namespace lmk::kernels
