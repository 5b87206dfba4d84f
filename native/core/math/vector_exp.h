// The one fast exp of the kernels, shared by the CPU and CUDA code (wkv4's
// recurrence, the attention softmax, the losses' CPU rows). Written so GCC
// vectorises loops that call it: straight-line arithmetic and selects, no
// branches and no libm call except fmaf.
//
//   e^x = 2^n · e^r,  n = round(x·log2 e),  r = x − n·ln 2  in [−ln2/2, ln2/2]
//
// Range reduction (Cody–Waite): ln 2 = kLn2Hi + kLn2Lo with kLn2Hi = 355/512,
// so n·kLn2Hi is exact for |n| < 2^15 and x − n·kLn2Hi is exact (Sterbenz).
// e^r = 1 + r + r²·q(r), q a degree-4 minimax fit (relative error of e^r
// about 3e-9; coefficients rounded to float), by Horner.
//
// Every multiply-add is an explicit fused multiply-add (vector_exp_fma): one
// rounding, so the value does not depend on what a compiler would contract
// (the host builds with -ffp-contract=off; nvcc contracts by default, and
// nothing is left here for it to contract), and it is one instruction where
// the target has FMA (x86-64-v3 and up, see kernels/cpu_dispatch.h; every
// GPU). fmaf is correctly rounded everywhere, so the result is the same bits
// on every CPU level and on CUDA.
//
// Accuracy, measured against the double exp on every float argument
// (native/test/math_test.cc walks a subset each run): at most 1.014 ulp of
// e^x; e^0 = 1 exactly (wkv4 relies on it). Below kLow = −86.9 (e^x < 1.9e-38,
// next to the subnormal range) and for −inf the result is +0: flushed, not
// rounded to a subnormal. NaN gives NaN.
//
// vector_expf: any x; x > 88.72 (e^x > FLT_MAX) gives +inf.
// vector_expf_nonpositive: the same value for x <= 0 with fewer operations
// (2^n formed directly, no overflow path); valid for x up to 88 (n <= 127),
// so rounding noise above 0 (a score a hair above its running maximum) is fine.
// vector_exp / vector_exp_nonpositive: the same, overloaded for the kernels'
// accumulation types (float, double).
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
constexpr float kLn2Hi = 0.693359375f;             // 355/512
constexpr float kLn2Lo = -2.1219444005469058e-4f;  // ln 2 − kLn2Hi
constexpr float kShift = 12582912.0f;              // 1.5·2^23: adding it rounds to an integer (ties to even)
constexpr float kLow = -86.9f;                     // n >= -125, so 2^(n-1) is normal
constexpr float kHigh = 88.72283172607421875f;     // the largest float with e^x < FLT_MAX

// e^r − 1 = r + r²·q(r) for the reduced argument r of x, where
// `shifted` = x·log2e + kShift (the caller adds the 1: one rounding).
LMK_HOST_DEVICE float exp_reduced_minus_one(float x, float shifted) {
  float n = shifted - kShift;
  float r = vector_exp_fma(n, -kLn2Hi, x);  // exact
  r = vector_exp_fma(n, -kLn2Lo, r);
  float q = 1.3814613e-3f;
  q = vector_exp_fma(q, r, 8.3687100e-3f);
  q = vector_exp_fma(q, r, 4.1668390e-2f);
  q = vector_exp_fma(q, r, 1.6666521e-1f);
  q = vector_exp_fma(q, r, 4.9999994e-1f);
  return vector_exp_fma(q, r * r, r);
}

// The bits of `shifted` minus those of kShift: n in two's complement (the
// low mantissa bits of `shifted` hold it). Unsigned, so a NaN's bits wrap
// harmlessly (the NaN survives in the polynomial).
LMK_HOST_DEVICE uint32_t exponent_bits(float shifted) { return float_bits(shifted) - float_bits(kShift); }
}  // namespace vector_exp_detail

LMK_HOST_DEVICE float vector_expf(float x) {
  using namespace vector_exp_detail;
  float xc = x < kLow ? kLow : x;  // NaN stays NaN through both clamps
  xc = xc > kHigh ? kHigh : xc;
  float shifted = vector_exp_fma(xc, kLog2e, kShift);
  float p = exp_reduced_minus_one(xc, shifted) + 1.0f;  // e^r in [0.70, 1.42]
  // 2^n as 2·2^(n-1), n in [-125, 128]: exponent field n + 126 (n = 128 fits).
  float scale = bits_float((exponent_bits(shifted) + 126u) << 23);
  float result = (p * 2.0f) * scale;  // p·2 >= 1.4: the product is normal
  result = x < kLow ? 0.0f : result;
  return x > kHigh ? bits_float(0x7f800000u) : result;
}

LMK_HOST_DEVICE float vector_expf_nonpositive(float x) {
  using namespace vector_exp_detail;
  float xc = x < kLow ? kLow : x;
  float shifted = vector_exp_fma(xc, kLog2e, kShift);
  float p = exp_reduced_minus_one(xc, shifted) + 1.0f;
  float scale = bits_float((exponent_bits(shifted) + 127u) << 23);  // 2^n, n in [-125, 127]: normal
  float result = p * scale;
  return x < kLow ? 0.0f : result;
}

// The same for the accumulation type (math/compute_type.h), by overload:
// float as above; double (the CPU reference precision) the library exp.
LMK_HOST_DEVICE float vector_exp(float x) { return vector_expf(x); }
LMK_HOST_DEVICE double vector_exp(double x) { return ::exp(x); }
LMK_HOST_DEVICE float vector_exp_nonpositive(float x) { return vector_expf_nonpositive(x); }
LMK_HOST_DEVICE double vector_exp_nonpositive(double x) { return ::exp(x); }

}  // namespace lmk
