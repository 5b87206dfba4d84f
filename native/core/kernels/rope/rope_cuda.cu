// RoPE on CUDA: one thread per pair (p, m, t, i); angle, cosine and sine in
// double as on the CPU.
#include <cuda_runtime.h>

#include "kernels/cuda_grid.h"
#include "kernels/cuda_launch.cuh"
#include "kernels/elementwise/float_dispatch.h"
#include "kernels/rope/rope.h"
#include "math/compute_type.h"
#include "math/rope_angle.h"
#include "runtime/cuda_check.h"

namespace lmk::kernels {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void rope_kernel(RopeParams p, const T* x, T* out) {
  const int64_t half = p.D / 2;
  const int64_t pairs = p.P * p.Mid * p.T * half;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < pairs; e += int64_t(gridDim.x) * blockDim.x) {
    int64_t i = e % half;
    int64_t row = e / half;  // (pp * Mid + m) * T + t
    int64_t t = row % p.T;
    int64_t pp = row / (p.Mid * p.T);
    double angle = rope_angle(p.positions[pp * p.T + t], i, p.D, p.base);
    double s, c;
    sincos(angle, &s, &c);
    float cos_t = static_cast<float>(c), sin_t = static_cast<float>(p.inverse ? -s : s);
    float y0, y1;
    rope_rotate(load_compute(x, row * p.D + 2 * i), load_compute(x, row * p.D + 2 * i + 1), cos_t, sin_t, &y0, &y1);
    store_compute(out, row * p.D + 2 * i, y0);
    store_compute(out, row * p.D + 2 * i + 1, y1);
  }
}

}  // namespace

void rope_cuda(const RopeParams& p, void* stream) {
  const int64_t pairs = p.P * p.Mid * p.T * (p.D / 2);
  if (pairs == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  int64_t blocks = (pairs + kThreads - 1) / kThreads;
  unsigned grid = looping_grid(blocks, 65535 * 8);
  dispatch_float<false>(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(rope_kernel<T>, grid, kThreads, 0, s, p, static_cast<const T*>(p.x), static_cast<T*>(p.out));
  });
  cuda_check_launch("rope");
}

}  // namespace lmk::kernels
