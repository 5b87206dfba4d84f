// bfloat16 and float16 storage conversions, bit-exact and identical on CPU and
// CUDA: round to nearest, ties to even; NaN stays NaN; overflow goes to Inf.
#pragma once
#include <cstdint>
#include <cstring>

#include "math/host_device.h"

namespace lmk {

struct bf16 {
  uint16_t bits;
};
struct f16 {
  uint16_t bits;
};

LMK_HOST_DEVICE uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}

LMK_HOST_DEVICE float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

LMK_HOST_DEVICE uint64_t double_bits(double d) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint64_t>(__double_as_longlong(d));
#else
  uint64_t u;
  std::memcpy(&u, &d, 8);
  return u;
#endif
}

LMK_HOST_DEVICE double bits_double(uint64_t u) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(u));
#else
  double d;
  std::memcpy(&d, &u, 8);
  return d;
#endif
}

LMK_HOST_DEVICE float bf16_to_float(bf16 h) { return bits_float(static_cast<uint32_t>(h.bits) << 16); }

LMK_HOST_DEVICE bf16 float_to_bf16(float f) {
  uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{static_cast<uint16_t>((u >> 16) | 0x0040u)};  // quiet NaN
  uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);                                                // ties to even
  return bf16{static_cast<uint16_t>((u + rounding) >> 16)};
}

LMK_HOST_DEVICE float f16_to_float(f16 h) {
  uint32_t sign = static_cast<uint32_t>(h.bits & 0x8000u) << 16;
  uint32_t exponent = (h.bits >> 10) & 0x1fu;
  uint32_t mantissa = h.bits & 0x3ffu;
  if (exponent == 0x1fu) return bits_float(sign | 0x7f800000u | (mantissa << 13));  // Inf/NaN
  if (exponent == 0) {
    // Subnormal: mantissa * 2^-24, exact in float.
    float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
    return bits_float(float_bits(magnitude) | sign);
  }
  return bits_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

LMK_HOST_DEVICE f16 float_to_f16(float f) {
  uint32_t u = float_bits(f);
  uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  uint32_t magnitude = u & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return f16{static_cast<uint16_t>(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu))};
  if (magnitude >= 0x477ff000u) return f16{static_cast<uint16_t>(sign | 0x7c00u)};  // rounds to >= 65520: Inf
  if (magnitude < 0x38800000u) {
    // Result is subnormal (or zero): value / 2^-24 rounded to an integer, ties to even.
    if (magnitude < 0x33000000u) return f16{sign};  // below half the smallest subnormal
    uint32_t exponent = magnitude >> 23;
    uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;
    // value = mantissa * 2^(exponent-150), so in units of 2^-24 it is mantissa >> (126 - exponent).
    uint32_t shift = 126u - exponent;
    uint32_t result = mantissa >> shift;
    uint32_t remainder = mantissa & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1u);
    if (remainder > half || (remainder == half && (result & 1u))) ++result;
    return f16{static_cast<uint16_t>(sign | result)};
  }
  // Normal: rebias exponent (127 -> 15) and round 13 dropped bits to even.
  uint32_t rounded = magnitude + 0xfffu + ((magnitude >> 13) & 1u);
  return f16{static_cast<uint16_t>(sign | ((rounded - 0x38000000u) >> 13))};
}

// Correct rounding from double in one step: round to float with
// round-to-odd, then to the 16-bit type (round-to-odd with at least two
// extra bits makes the second rounding exact, as if done once).
LMK_HOST_DEVICE float double_to_float_round_odd(double d) {
  float f = static_cast<float>(d);
  uint32_t u = float_bits(f);
  double back = static_cast<double>(f);
  if (back != d && (u & 1u) == 0u && (u & 0x7fffffffu) < 0x7f800000u && d == d) {
    // f was rounded; step to the odd neighbour that lies on d's side.
    bool away_from_zero = (back < d) == (d > 0.0);
    u = away_from_zero ? u + 1u : u - 1u;
    f = bits_float(u);
  }
  return f;
}

LMK_HOST_DEVICE bf16 double_to_bf16(double d) { return float_to_bf16(double_to_float_round_odd(d)); }
LMK_HOST_DEVICE f16 double_to_f16(double d) { return float_to_f16(double_to_float_round_odd(d)); }

}  // namespace lmk
