// Layer norm and RMS norm over the last axis of a contiguous [rows, C] tensor,
// forward and backward. Compute type float (double for float64).
//
//   layer norm: mean = Σx/C, var = Σ(x-mean)²/C (two passes), rstd = 1/√(var+eps),
//               y = (x-mean)·rstd·w + b
//   RMS norm:   rstd = 1/√(Σx²/C + eps), y = x·rstd·w
//   backward (x̂ = (x-mean)·rstd, or x·rstd for RMS; g = gy·w):
//     layer norm: gx = rstd·(g - mean(g) - x̂·mean(g·x̂))
//     RMS norm:   gx = rstd·(g - x̂·mean(g·x̂))
//     gWeight = Σ_rows gy·x̂, gBias = Σ_rows gy
// Row sums use a fixed order; gWeight/gBias add rows in chunks whose size
// depends on the shape only, chunk sums in order (CPU), or one thread per
// column walking the rows in order (CUDA). Deterministic, no float atomics.
#pragma once
#include <cstdint>

#include "runtime/dtype.h"

namespace lmk::kernels {

struct NormParams {
  DType dtype = DType::Float32;  // x, weight, bias, y, gy, gx, gWeight, gBias
  bool rms = false;              // RMS norm (no mean, no bias)
  int64_t rows = 0, C = 0;
  double eps = 1e-5;
  const void* x = nullptr;
  const void* weight = nullptr;  // [C] or null
  const void* bias = nullptr;    // [C] or null (layer norm only)
  // forward outputs; backward inputs (mean/rstd: [rows] float, double for float64)
  void* y = nullptr;
  void* mean = nullptr;  // layer norm only
  void* rstd = nullptr;
  // backward
  const void* gy = nullptr;
  void* gx = nullptr;
  void* gweight = nullptr;  // [C] or null (not wanted)
  void* gbias = nullptr;    // [C] or null (not wanted)
};

void norm_forward_cpu(const NormParams& p);
void norm_backward_cpu(const NormParams& p);

void norm_forward_cuda(const NormParams& p, void* stream);
void norm_backward_cuda(const NormParams& p, void* stream);

}  // namespace lmk::kernels
