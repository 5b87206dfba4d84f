// Element loads and stores for every dtype, shared by the CPU and CUDA copy
// and creation kernels. Any value goes through double (exact for all five
// dtypes) and is rounded once on store: RNE for floats, truncation toward zero
// with saturation for int32 (NaN -> 0).
#pragma once
#include <cstdint>

#include "math/half.h"
#include "math/host_device.h"

namespace lmk {

template <typename T>
LMK_HOST_DEVICE double load_as_double(const T* p, int64_t i);
template <>
LMK_HOST_DEVICE double load_as_double<float>(const float* p, int64_t i) {
  return p[i];
}
template <>
LMK_HOST_DEVICE double load_as_double<double>(const double* p, int64_t i) {
  return p[i];
}
template <>
LMK_HOST_DEVICE double load_as_double<int32_t>(const int32_t* p, int64_t i) {
  return p[i];
}
template <>
LMK_HOST_DEVICE double load_as_double<bf16>(const bf16* p, int64_t i) {
  return bf16_to_float(p[i]);
}
template <>
LMK_HOST_DEVICE double load_as_double<f16>(const f16* p, int64_t i) {
  return f16_to_float(p[i]);
}

template <typename T>
LMK_HOST_DEVICE void store_from_double(T* p, int64_t i, double v);
template <>
LMK_HOST_DEVICE void store_from_double<float>(float* p, int64_t i, double v) {
  p[i] = static_cast<float>(v);
}
template <>
LMK_HOST_DEVICE void store_from_double<double>(double* p, int64_t i, double v) {
  p[i] = v;
}
template <>
LMK_HOST_DEVICE void store_from_double<bf16>(bf16* p, int64_t i, double v) {
  p[i] = double_to_bf16(v);
}
template <>
LMK_HOST_DEVICE void store_from_double<f16>(f16* p, int64_t i, double v) {
  p[i] = double_to_f16(v);
}
template <>
LMK_HOST_DEVICE void store_from_double<int32_t>(int32_t* p, int64_t i, double v) {
  if (!(v == v)) {
    p[i] = 0;
    return;
  }
  if (v >= 2147483647.0) {
    p[i] = 2147483647;
    return;
  }
  if (v <= -2147483648.0) {
    p[i] = -2147483647 - 1;
    return;
  }
  p[i] = static_cast<int32_t>(v);
}

}  // namespace lmk
