// Double-precision log, sin/cos and friends built only from correctly rounded
// IEEE operations (add, mul, div, sqrt, fma), each spelled out so no compiler
// may contract or reorder them. The results are therefore bit-identical on the
// CPU (host built with -ffp-contract=off) and on CUDA (intrinsics below), which
// is what makes random normals identical across devices. Accuracy: a few ulp
// of double, far below float32 resolution.
#pragma once
#include <cmath>
#include <cstdint>

#include "math/half.h"
#include "math/host_device.h"

namespace lmk {

LMK_HOST_DEVICE double exact_fma(double a, double b, double c) {
#if defined(__CUDA_ARCH__)
  return __fma_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
LMK_HOST_DEVICE double exact_mul(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
LMK_HOST_DEVICE double exact_add(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
LMK_HOST_DEVICE double exact_div(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}
LMK_HOST_DEVICE double exact_sqrt(double a) {
#if defined(__CUDA_ARCH__)
  return __dsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}

// The largest float below `x` (x finite).
LMK_HOST_DEVICE float exact_prev_float(float x) {
  uint32_t u = float_bits(x);
  if (x > 0.0f) return bits_float(u - 1u);
  if (x == 0.0f) return bits_float(0x80000001u);
  return bits_float(u + 1u);
}

// Natural log of a positive normal double.
LMK_HOST_DEVICE double exact_log(double x) {
  uint64_t bits = double_bits(x);
  int exponent = static_cast<int>((bits >> 52) & 0x7ff) - 1023;
  double m = bits_double((bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull);  // [1, 2)
  if (m > 1.4142135623730951) {
    m = exact_mul(m, 0.5);
    exponent += 1;
  }
  // log(m) = 2 atanh(f), f = (m - 1) / (m + 1), |f| < 0.172: odd series in f.
  double f = exact_div(exact_add(m, -1.0), exact_add(m, 1.0));
  double f2 = exact_mul(f, f);
  double series = 1.0 / 25.0;
  for (int n = 23; n >= 1; n -= 2) series = exact_fma(series, f2, 1.0 / static_cast<double>(n));
  double log_m = exact_mul(exact_mul(2.0, f), series);
  constexpr double kLn2Hi = 6.93147180369123816490e-01;  // ln 2 split so that e * hi is exact
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  double e = static_cast<double>(exponent);
  return exact_add(exact_mul(e, kLn2Hi), exact_fma(e, kLn2Lo, log_m));
}

// sin and cos of 2*pi*t for t in [0, 1) that is a multiple of 2^-32, so the
// quarter-turn reduction below is exact.
LMK_HOST_DEVICE void exact_sincos_turns(double t, double* sin_out, double* cos_out) {
  double quarters = exact_add(exact_mul(t, 4.0), 0.5);
  int k = static_cast<int>(quarters);                       // floor for non-negative values
  double r = exact_add(t, -0.25 * static_cast<double>(k));  // in [-1/8, 1/8], exact
  constexpr double kTwoPiHi = 6.28318530717958623200e+00;
  constexpr double kTwoPiLo = 2.44929359829470635445e-16;
  double a = exact_fma(r, kTwoPiHi, exact_mul(r, kTwoPiLo));  // |a| <= pi/4
  double a2 = exact_mul(a, a);
  // Taylor series to a^19 / a^18: truncation below 1e-18.
  double s = -1.0 / 121645100408832000.0;  // -1/19!
  s = exact_fma(s, a2, 1.0 / 355687428096000.0);
  s = exact_fma(s, a2, -1.0 / 1307674368000.0);
  s = exact_fma(s, a2, 1.0 / 6227020800.0);
  s = exact_fma(s, a2, -1.0 / 39916800.0);
  s = exact_fma(s, a2, 1.0 / 362880.0);
  s = exact_fma(s, a2, -1.0 / 5040.0);
  s = exact_fma(s, a2, 1.0 / 120.0);
  s = exact_fma(s, a2, -1.0 / 6.0);
  double sine = exact_fma(exact_mul(s, a2), a, a);
  double c = 1.0 / 6402373705728000.0;  // 1/18!
  c = exact_fma(c, a2, -1.0 / 20922789888000.0);
  c = exact_fma(c, a2, 1.0 / 87178291200.0);
  c = exact_fma(c, a2, -1.0 / 479001600.0);
  c = exact_fma(c, a2, 1.0 / 3628800.0);
  c = exact_fma(c, a2, -1.0 / 40320.0);
  c = exact_fma(c, a2, 1.0 / 720.0);
  c = exact_fma(c, a2, -1.0 / 24.0);
  c = exact_fma(c, a2, 0.5);
  double cosine = exact_fma(-c, a2, 1.0);
  switch (k & 3) {
    case 0:
      *sin_out = sine;
      *cos_out = cosine;
      break;
    case 1:
      *sin_out = cosine;
      *cos_out = -sine;
      break;
    case 2:
      *sin_out = -sine;
      *cos_out = -cosine;
      break;
    default:
      *sin_out = -cosine;
      *cos_out = sine;
      break;
  }
}

}  // namespace lmk
