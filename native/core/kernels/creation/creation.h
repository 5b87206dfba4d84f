// Creation kernels: fill, arange, Philox uniform/normal. Raw pointers and sizes;
// the ops in core/ops validate and schedule them.
#pragma once
#include <cstdint>

#include "runtime/dtype.h"

namespace lmk::kernels {

struct RandomParams {
  bool normal = false;  // false: uniform in [low, high)
  uint64_t seed = 0;
  uint64_t offset = 0;       // Philox counter words 2-3: distinct streams per call
  double low = 0, high = 1;  // uniform
  double mean = 0, std = 1;  // normal
};

void fill_cpu(void* data, DType dtype, int64_t n, double value);
void arange_cpu(void* data, DType dtype, int64_t n);
void random_cpu(void* data, DType dtype, int64_t n, const RandomParams& params);

void fill_cuda(void* data, DType dtype, int64_t n, double value, void* stream);
void arange_cuda(void* data, DType dtype, int64_t n, void* stream);
void random_cuda(void* data, DType dtype, int64_t n, const RandomParams& params, void* stream);
}  // namespace lmk::kernels
