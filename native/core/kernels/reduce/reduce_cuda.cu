// Sum over the middle axis on CUDA, deterministic (see reduce.h): pass 1 gives
// each (o, chunk of r, block of 256 i) to one thread block — for I = 1 the
// threads stride over the chunk and fold with a fixed shared-memory tree, for
// I > 1 each thread walks its column over the chunk in order. Pass 2 (only
// with several chunks) adds the chunk sums in chunk order in double, one
// thread per output.
#include <cuda_runtime.h>

#include "kernels/cuda_grid.h"
#include "kernels/cuda_launch.cuh"
#include "kernels/elementwise/float_dispatch.h"
#include "kernels/reduce/reduce.h"
#include "math/compute_type.h"
#include "runtime/cuda_check.h"

namespace lmk::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kRowChunk = 16384;
constexpr int64_t kChunkElems = 65536;
constexpr int64_t kMaxBlocks = 65535 * 4;

struct Plan {
  int64_t chunk, chunks, iblocks;
};

Plan plan_for(const SumParams& p) {
  Plan plan;
  int64_t rows = kChunkElems / p.I;
  plan.chunk = p.I == 1 ? kRowChunk : (rows < 64 ? 64 : rows > 1024 ? 1024 : rows);
  plan.chunks = p.R == 0 ? 1 : (p.R + plan.chunk - 1) / plan.chunk;
  plan.iblocks = p.I == 1 ? 1 : (p.I + kThreads - 1) / kThreads;
  return plan;
}

template <typename T>
__global__ void sum_chunks_kernel(const T* x, int64_t O, int64_t R, int64_t I, Plan plan, T* out, float* partial) {
  __shared__ float tree[kThreads];
  const int64_t items = O * plan.chunks * plan.iblocks;
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    int64_t ib = item % plan.iblocks, c = (item / plan.iblocks) % plan.chunks, o = item / (plan.iblocks * plan.chunks);
    int64_t r0 = c * plan.chunk, r1 = r0 + plan.chunk < R ? r0 + plan.chunk : R;
    if (I == 1) {
      float acc = 0;
      for (int64_t r = r0 + threadIdx.x; r < r1; r += kThreads) acc += load_compute(x, o * R + r);
      tree[threadIdx.x] = acc;
      __syncthreads();
      for (int width = kThreads / 2; width >= 1; width /= 2) {
        if (threadIdx.x < width) tree[threadIdx.x] += tree[threadIdx.x + width];
        __syncthreads();
      }
      // No barrier before the next item's tree: only thread 0 reads tree[0] here,
      // and only thread 0 writes tree[0] there, after this read.
      if (threadIdx.x == 0) {
        if (plan.chunks == 1)
          store_compute(out, o, tree[0]);
        else
          partial[o * plan.chunks + c] = tree[0];
      }
    } else {
      int64_t i = ib * kThreads + threadIdx.x;
      if (i < I) {
        float acc = 0;
        for (int64_t r = r0; r < r1; ++r) acc += load_compute(x, (o * R + r) * I + i);
        if (plan.chunks == 1)
          store_compute(out, o * I + i, acc);
        else
          partial[(o * plan.chunks + c) * I + i] = acc;
      }
    }
  }
}

template <typename T>
__global__ void sum_partials_kernel(const float* partial, int64_t O, int64_t I, int64_t chunks, T* out) {
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < O * I; k += int64_t(gridDim.x) * blockDim.x) {
    int64_t o = k / I, i = k % I;
    const float* src = partial + o * chunks * I + i;
    double total = 0;
    for (int64_t c = 0; c < chunks; ++c) total += static_cast<double>(src[c * I]);
    store_compute(out, k, static_cast<float>(total));
  }
}

}  // namespace

size_t sum_workspace_bytes_cuda(const SumParams& p) {
  Plan plan = plan_for(p);
  return plan.chunks > 1 ? static_cast<size_t>(p.O * plan.chunks * p.I) * sizeof(float) : 0;
}

void sum_cuda(const SumParams& p, void* stream) {
  if (p.O * p.I == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  Plan plan = plan_for(p);
  int64_t items = p.O * plan.chunks * plan.iblocks;
  unsigned grid = looping_grid(items, kMaxBlocks);
  float* partial = static_cast<float*>(p.workspace);
  dispatch_float<false>(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(sum_chunks_kernel<T>, grid, kThreads, 0, s, static_cast<const T*>(p.x), p.O, p.R, p.I, plan,
           static_cast<T*>(p.out), partial);
    if (plan.chunks > 1) {
      int64_t n = p.O * p.I;
      int64_t blocks = (n + kThreads - 1) / kThreads;
      launch(sum_partials_kernel<T>, looping_grid(blocks, kMaxBlocks), kThreads, 0, s, partial, p.O, p.I, plan.chunks,
             static_cast<T*>(p.out));
    }
  });
  cuda_check_launch("sum");
}

}  // namespace lmk::kernels
