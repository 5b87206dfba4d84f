// Sum over the middle axis of a contiguous [O, R, I] tensor:
//   out[o, i] = Σ_r x[o, r, i]
// Any sum over a set of axes is this after merging axes (ops/reduce.cc
// permutes first when the summed axes are not adjacent). Accumulation is in
// float (double for float64), in an order fixed by the shape alone: r is cut
// into chunks of a size that depends only on (R, I); each chunk is summed in
// order in the compute type (for I = 1 in interleaved lanes folded by a fixed
// tree), then the chunk sums are added in chunk order in double. No float
// atomics, so results are bit-identical from run to run and for any thread
// count.
#pragma once
#include <cstddef>
#include <cstdint>

#include "runtime/dtype.h"

namespace lmk::kernels {

struct SumParams {
  DType dtype = DType::Float32;  // of x and out
  int64_t O = 1, R = 1, I = 1;
  const void* x = nullptr;
  void* out = nullptr;        // [O, I]
  void* workspace = nullptr;  // CUDA: sum_workspace_bytes_cuda(*this) bytes (may be 0)
};

void sum_cpu(const SumParams& p);

size_t sum_workspace_bytes_cuda(const SumParams& p);
void sum_cuda(const SumParams& p, void* stream);

}  // namespace lmk::kernels
