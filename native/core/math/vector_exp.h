// A fast float exp for the CPU loss kernels, written so GCC vectorises loops
// that call it (straight-line arithmetic and selects, no libm call except
// fmaf, no branches). The CUDA kernels use the hardware __expf instead (see
// math/log_sum_exp.h); this header is host/device only so it can be tested
// everywhere.
//
//   e^x = 2^n · e^r,  n = round(x·log2 e),  r = x − n·ln 2  in [−ln2/2, ln2/2]
//
// Range reduction (Cody–Waite): ln 2 = kLn2Hi + kLn2Lo with kLn2Hi = 355/512,
// so n·kLn2Hi is exact for |n| < 2^15 and x − n·kLn2Hi is exact (Sterbenz).
// e^r: the Taylor polynomial of degree 7 (truncation error below 5e-9
// relative on the interval), by Horner as 1 + r + r²·P(r).
//
// Every multiply-add is an explicit fused multiply-add (vector_exp_fma): one
// rounding, so results do not depend on what the compiler would contract
// (the core builds with -ffp-contract=off), and one instruction where the
// target has FMA (the kernels are cloned for x86-64-v3/v4; fmaf is correctly
// rounded everywhere, so the value is the same on every target).
//
// vector_expf: any x. Within 2 ulp of e^x for x in [−86.5, 88.72] (measured
// against the double exp in native/test/losses_test.cc). e^0 = 1 exactly;
// x < −86.5 (e^x < 2.9e-38, next to the subnormal range) and −inf give +0;
// x > 88.72 gives +inf; NaN gives NaN.
//
// vector_expf_nonpositive: the same value for x <= 0 with fewer operations
// (no overflow path: 2^n is formed directly); NaN gives 0, so callers that
// must propagate NaN check for it themselves.
#pragma once
#include <cmath>
#include <cstdint>

#include "math/half.h"
#include "math/host_device.h"

namespace lmk {

LMK_HOST_DEVICE float vector_exp_fma(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#elif defined(__GNUC__)
  return __builtin_fmaf(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

namespace vector_exp_detail {
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2Hi = 0.693359375f;
constexpr float kLn2Lo = -2.1219444005469058e-4f;
constexpr float kShift = 12582912.0f;           // 1.5·2^23: adding it rounds to an integer (ties to even)
constexpr float kLow = -86.5f;                  // n >= -125, so 2^(n-1) is normal
constexpr float kHigh = 88.72283172607421875f;  // largest float with e^x < FLT_MAX

// e^r for r in [−ln2/2, ln2/2] given n, and the bits of x·log2e + kShift.
LMK_HOST_DEVICE float exp_reduced(float x, float shifted, float* n_out) {
  float n = shifted - kShift;
  float r = vector_exp_fma(n, -kLn2Hi, x);
  r = vector_exp_fma(n, -kLn2Lo, r);
  float p = 1.0f / 5040.0f;
  p = vector_exp_fma(p, r, 1.0f / 720.0f);
  p = vector_exp_fma(p, r, 1.0f / 120.0f);
  p = vector_exp_fma(p, r, 1.0f / 24.0f);
  p = vector_exp_fma(p, r, 1.0f / 6.0f);
  p = vector_exp_fma(p, r, 0.5f);
  p = vector_exp_fma(p, r * r, r);
  *n_out = n;
  return p + 1.0f;
}
}  // namespace vector_exp_detail

LMK_HOST_DEVICE float vector_expf(float x) {
  using namespace vector_exp_detail;
  float xc = x > kLow ? x : kLow;  // NaN becomes kLow here; the last select restores it
  xc = xc < kHigh ? xc : kHigh;
  float shifted = vector_exp_fma(xc, kLog2e, kShift);
  float n;
  float p = exp_reduced(xc, shifted, &n);
  // The low mantissa bits of `shifted` hold n (two's complement, n in [-125, 128]).
  uint32_t n_bits = float_bits(shifted) - float_bits(kShift);
  float scale = bits_float((n_bits + 126u) << 23);  // 2^(n-1)
  float result = (p * 2.0f) * scale;                // p·2 >= 1.4: never subnormal before the scale
  result = x < kLow ? 0.0f : result;
  result = x > kHigh ? bits_float(0x7f800000u) : result;
  result = x != x ? x : result;
  return result;
}

LMK_HOST_DEVICE float vector_expf_nonpositive(float x) {
  using namespace vector_exp_detail;
  float xc = x > kLow ? x : kLow;
  float shifted = vector_exp_fma(xc, kLog2e, kShift);
  float n;
  float p = exp_reduced(xc, shifted, &n);
  uint32_t n_bits = float_bits(shifted) - float_bits(kShift);
  float scale = bits_float((n_bits + 127u) << 23);  // 2^n, n in [-125, 0]: normal
  float result = p * scale;
  return x >= kLow ? result : 0.0f;
}

}  // namespace lmk
