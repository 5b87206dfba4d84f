// The type dense kernels compute in, and loads/stores between it and the
// storage type: float for float32, bfloat16 and float16 (rounded once, on
// store, to nearest even); double for float64. Shared by CPU and CUDA kernels.
#pragma once
#include <cstdint>

#include "math/half.h"
#include "math/host_device.h"

namespace lmk {

template <typename T>
struct ComputeTypeOf {
  using type = float;
};
template <>
struct ComputeTypeOf<double> {
  using type = double;
};
template <typename T>
using compute_t = typename ComputeTypeOf<T>::type;

LMK_HOST_DEVICE float load_compute(const float* p, int64_t i) { return p[i]; }
LMK_HOST_DEVICE double load_compute(const double* p, int64_t i) { return p[i]; }
LMK_HOST_DEVICE float load_compute(const bf16* p, int64_t i) { return bf16_to_float(p[i]); }
LMK_HOST_DEVICE float load_compute(const f16* p, int64_t i) { return f16_to_float(p[i]); }

LMK_HOST_DEVICE void store_compute(float* p, int64_t i, float v) { p[i] = v; }
LMK_HOST_DEVICE void store_compute(double* p, int64_t i, double v) { p[i] = v; }
LMK_HOST_DEVICE void store_compute(bf16* p, int64_t i, float v) { p[i] = float_to_bf16(v); }
LMK_HOST_DEVICE void store_compute(f16* p, int64_t i, float v) { p[i] = float_to_f16(v); }

}  // namespace lmk
