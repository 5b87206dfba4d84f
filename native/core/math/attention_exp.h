// A fast, vectorisable e^x for attention softmax weights, shared by the CPU
// and CUDA kernels: arguments are scores minus a running maximum (or minus the
// log-sum-exp), so x <= 0 up to rounding and often very negative.
//
// float: Cody–Waite reduction x = n·ln2 + r, |r| <= ln2/2, then a degree-6
// polynomial for e^r (Cephes expf coefficients), scaled by 2^n built in the
// exponent bits. Relative error below 2e-7 (about 2 ulp) for x in
// [-87.3, 88.7]; exactly 1 at x = 0; 0 below -87.3 (e^x < 1.2e-38, where the
// result would be subnormal) including -inf; NaN stays NaN. Branch-free, so GCC
// vectorises loops over it. double: the library exp (float64 is the CPU-only
// reference precision; it must stay within 1e-12).
#pragma once
#include <cmath>
#include <cstdint>

#include "math/half.h"
#include "math/host_device.h"

namespace lmk {

LMK_HOST_DEVICE float attention_expf(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;     // 355/512: n·kLn2Hi is exact for |n| <= 2^15
  constexpr float kLn2Lo = -2.12194440e-4f;  // ln 2 − kLn2Hi
  constexpr float kRound = 12582912.0f;      // 1.5·2^23: (y + kRound) − kRound rounds y to an integer
  constexpr float kMinArg = -87.3f;          // n >= -126: 2^n stays a normal float
  constexpr float kMaxArg = 88.7f;           // n <= 128 with r < 0 keeps the product finite
  bool underflow = x < kMinArg;              // false for NaN
  float xc = x < kMinArg ? kMinArg : x;
  xc = xc > kMaxArg ? kMaxArg : xc;
  float n = (xc * kLog2e + kRound) - kRound;
  float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float er = (p * r) * r + r + 1.0f;
  // 2^n in two halves so that n = 128 (x near 88.7) does not overflow the exponent field.
  int32_t ni = static_cast<int32_t>(n);
  int32_t half = ni >> 1;
  float scale_a = bits_float(static_cast<uint32_t>(half + 127) << 23);
  float scale_b = bits_float(static_cast<uint32_t>(ni - half + 127) << 23);
  float result = er * scale_a * scale_b;
  result = x == x ? result : x;  // NaN in, NaN out
  return underflow ? 0.0f : result;
}

template <typename Acc>
LMK_HOST_DEVICE Acc attention_exp(Acc x);
template <>
LMK_HOST_DEVICE float attention_exp<float>(float x) {
  return attention_expf(x);
}
template <>
LMK_HOST_DEVICE double attention_exp<double>(double x) {
#if defined(__CUDA_ARCH__)
  return ::exp(x);
#else
  return std::exp(x);
#endif
}

}  // namespace lmk
