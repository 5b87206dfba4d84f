// The type every kernel computes and accumulates in for a storage type —
// float for float32, bfloat16 and float16; double for float64 — and the
// conversions between the two (bfloat16/float16: math/half.h, rounded once,
// on store, to nearest even). The one accumulation-type trait of the kernels,
// CPU and CUDA.
#pragma once
#include <cstdint>

#include "math/half.h"
#include "math/host_device.h"
#include "runtime/dtype.h"

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

// A stored value in its compute type, and back.
LMK_HOST_DEVICE float to_compute(float x) { return x; }
LMK_HOST_DEVICE double to_compute(double x) { return x; }
LMK_HOST_DEVICE float to_compute(bf16 x) { return bf16_to_float(x); }
LMK_HOST_DEVICE float to_compute(f16 x) { return f16_to_float(x); }

template <typename T>
LMK_HOST_DEVICE T from_compute(compute_t<T> x);
template <>
LMK_HOST_DEVICE float from_compute<float>(float x) {
  return x;
}
template <>
LMK_HOST_DEVICE double from_compute<double>(double x) {
  return x;
}
template <>
LMK_HOST_DEVICE bf16 from_compute<bf16>(float x) {
  return float_to_bf16(x);
}
template <>
LMK_HOST_DEVICE f16 from_compute<f16>(float x) {
  return float_to_f16(x);
}

// Element i of a typed array.
template <typename T>
LMK_HOST_DEVICE compute_t<T> load_compute(const T* p, int64_t i) {
  return to_compute(p[i]);
}
template <typename T>
LMK_HOST_DEVICE void store_compute(T* p, int64_t i, compute_t<T> v) {
  p[i] = from_compute<T>(v);
}

// Element i of a float32/bfloat16/float16 array whose dtype is a run-time
// value (kernels compiled once for the three).
LMK_HOST_DEVICE float load_compute(const void* p, int64_t i, DType dtype) {
  switch (dtype) {
    case DType::BFloat16: return load_compute(static_cast<const bf16*>(p), i);
    case DType::Float16: return load_compute(static_cast<const f16*>(p), i);
    default: return load_compute(static_cast<const float*>(p), i);
  }
}
LMK_HOST_DEVICE void store_compute(void* p, int64_t i, float v, DType dtype) {
  switch (dtype) {
    case DType::BFloat16: store_compute(static_cast<bf16*>(p), i, v); break;
    case DType::Float16: store_compute(static_cast<f16*>(p), i, v); break;
    default: store_compute(static_cast<float*>(p), i, v); break;
  }
}

}  // namespace lmk
