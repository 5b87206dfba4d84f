// Rotary position embedding (math/rope_angle.h) of x viewed as a contiguous
// [P, Mid, T, D] tensor with positions [P, T] int32: row (p, m, t) is rotated
// by positions[p, t] (P = 1 for positions shared by every batch). `inverse`
// rotates by −θ (the backward of the forward).
#pragma once
#include <cstdint>

#include "runtime/dtype.h"

namespace lmk::kernels {

struct RopeParams {
  DType dtype = DType::Float32;
  int64_t P = 1, Mid = 1, T = 0, D = 0;
  double base = 10000;
  bool inverse = false;
  const void* x = nullptr;
  const int32_t* positions = nullptr;
  void* out = nullptr;
};

void rope_cpu(const RopeParams& p);
void rope_cuda(const RopeParams& p, void* stream);

}  // namespace lmk::kernels
