// bfloat16 and float16 storage conversions: the one implementation every
// kernel (CPU and CUDA) uses. Round to nearest, ties to even; overflow goes
// to Inf; NaN stays NaN. Exact, so the same value on every target, for every
// non-NaN input (native/test/math_test.cc checks every 16-bit value and every
// rounding tie against a brute-force nearest search).
//
// On the CPU the conversions are branch-free (integer arithmetic and
// selects; float16 -> float uses only normal floats in its float arithmetic,
// so flush-to-zero modes cannot change it), so loops over 16-bit data
// vectorise. On CUDA the float16 conversions and float -> bfloat16 are the
// cvt instructions: the same values (a NaN becomes the canonical NaN there,
// while the CPU keeps its sign and top payload bits, quietened).
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

#include "math/host_device.h"

namespace lmk {

struct bf16 {
  uint16_t bits;
};
struct f16 {
  uint16_t bits;
};

// The object representation of `from` as a To of the same size (C++20's std::bit_cast).
template <typename To, typename From>
LMK_HOST_DEVICE To bit_cast(From from) {
  static_assert(sizeof(To) == sizeof(From), "bit_cast needs types of one size");
  To to;
  memcpy(&to, &from, sizeof(To));
  return to;
}

LMK_HOST_DEVICE uint32_t float_bits(float f) { return bit_cast<uint32_t>(f); }
LMK_HOST_DEVICE float bits_float(uint32_t u) { return bit_cast<float>(u); }
LMK_HOST_DEVICE uint64_t double_bits(double d) { return bit_cast<uint64_t>(d); }
LMK_HOST_DEVICE double bits_double(uint64_t u) { return bit_cast<double>(u); }

LMK_HOST_DEVICE float bf16_to_float(bf16 h) { return bits_float(static_cast<uint32_t>(h.bits) << 16); }

LMK_HOST_DEVICE bf16 float_to_bf16(float f) {
#if defined(__CUDA_ARCH__)
  return bf16{__bfloat16_as_ushort(__float2bfloat16_rn(f))};
#else
  const uint32_t u = float_bits(f);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;  // ties to even; overflow carries into Inf
  const uint32_t nan = (u >> 16) | 0x0040u;                         // quiet, sign and payload kept
  return bf16{static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded)};
#endif
}

LMK_HOST_DEVICE float f16_to_float(f16 h) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(h.bits));
#else
  // Exponent and mantissa moved into place and rebiased (15 -> 127); Inf/NaN
  // get the rest of the exponent range; a subnormal m·2^-24 is formed as
  // (1 + m/1024)·2^-14 − 2^-14, exact, from normal floats only.
  const uint32_t magnitude = static_cast<uint32_t>(h.bits & 0x7fffu) << 13;
  const uint32_t exponent = magnitude & 0x0f800000u;
  uint32_t rebiased = magnitude + (112u << 23);
  rebiased = exponent == 0x0f800000u ? rebiased + (112u << 23) : rebiased;
  const float value = exponent == 0 ? bits_float(rebiased + (1u << 23)) - bits_float(113u << 23) : bits_float(rebiased);
  return bits_float(float_bits(value) | (static_cast<uint32_t>(h.bits & 0x8000u) << 16));
#endif
}

LMK_HOST_DEVICE f16 float_to_f16(float f) {
#if defined(__CUDA_ARCH__)
  return f16{__half_as_ushort(__float2half_rn(f))};
#else
  const uint32_t u = float_bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t magnitude = u & 0x7fffffffu;
  const uint32_t nan = 0x7e00u | ((magnitude >> 13) & 0x3ffu);  // quiet, top payload bits kept
  // Subnormal results (|f| < 2^-14): adding 0.5 leaves |f| in units of 2^-24
  // in the low mantissa bits, rounded to nearest even by the addition itself.
  const uint32_t subnormal = float_bits(bits_float(magnitude) + 0.5f) - 0x3f000000u;
  // Normal: rebias the exponent (127 -> 15) and round the 13 dropped bits to even.
  const uint32_t normal = (magnitude + 0xfffu + ((magnitude >> 13) & 1u) - 0x38000000u) >> 13;
  uint32_t r = magnitude < 0x38800000u ? subnormal : normal;
  r = magnitude >= 0x477ff000u ? 0x7c00u : r;  // rounds to >= 65520: Inf
  r = magnitude > 0x7f800000u ? nan : r;
  return f16{static_cast<uint16_t>(r | sign)};
#endif
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
