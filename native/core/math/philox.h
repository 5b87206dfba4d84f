// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3"),
// counter-based, so element i of a random tensor depends only on (seed, offset, i)
// and CPU and CUDA produce bit-identical values.
//
// Element i of a uniform tensor: counter = (i/4 lo, i/4 hi, offset lo, offset hi),
// key = (seed lo, seed hi), word i%4. Element i of a normal tensor: counter block
// i/2, words (0,1) for even i and (2,3) for odd i feed Box-Muller; even i takes
// the cosine branch, odd i the sine branch.
#pragma once
#include <cstdint>

#include "math/exact_math.h"
#include "math/host_device.h"

namespace lmk {

struct Philox4 {
  uint32_t v[4];
};

LMK_HOST_DEVICE void mul_hi_lo(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
  uint64_t product = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  *hi = static_cast<uint32_t>(product >> 32);
  *lo = static_cast<uint32_t>(product);
}

LMK_HOST_DEVICE Philox4 philox4x32_10(Philox4 counter, uint32_t key0, uint32_t key1) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  uint32_t c0 = counter.v[0], c1 = counter.v[1], c2 = counter.v[2], c3 = counter.v[3];
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mul_hi_lo(kMul0, c0, &hi0, &lo0);
    mul_hi_lo(kMul1, c2, &hi1, &lo1);
    uint32_t n0 = hi1 ^ c1 ^ key0;
    uint32_t n1 = lo1;
    uint32_t n2 = hi0 ^ c3 ^ key1;
    uint32_t n3 = lo0;
    c0 = n0;
    c1 = n1;
    c2 = n2;
    c3 = n3;
    key0 += kWeyl0;
    key1 += kWeyl1;
  }
  return Philox4{{c0, c1, c2, c3}};
}

LMK_HOST_DEVICE Philox4 philox_block(uint64_t seed, uint64_t offset, uint64_t block) {
  Philox4 counter{{static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), static_cast<uint32_t>(offset),
                   static_cast<uint32_t>(offset >> 32)}};
  return philox4x32_10(counter, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// Uniform float32 in [0, 1): the top 24 bits of a word, exact.
LMK_HOST_DEVICE float uniform_from_word(uint32_t word) {
  return static_cast<float>(word >> 8) * 5.9604644775390625e-8f;
}

LMK_HOST_DEVICE float philox_uniform(uint64_t seed, uint64_t offset, uint64_t i, float low, float high) {
  Philox4 r = philox_block(seed, offset, i >> 2);
  float u = uniform_from_word(r.v[i & 3]);
  // low + (high - low) * u in double, rounded once: identical on both devices.
  double value =
      exact_fma(static_cast<double>(high) - static_cast<double>(low), static_cast<double>(u), static_cast<double>(low));
  float result = static_cast<float>(value);
  // Keep the half-open interval even when rounding lands on `high`.
  return (result >= high && high > low) ? exact_prev_float(high) : result;
}

// Standard normal by Box-Muller in double with our own log/sin/cos built from
// correctly rounded operations (exact_math.h), rounded once to float.
LMK_HOST_DEVICE float philox_normal(uint64_t seed, uint64_t offset, uint64_t i, double mean, double std) {
  Philox4 r = philox_block(seed, offset, i >> 1);
  uint32_t w0 = r.v[(i & 1) * 2], w1 = r.v[(i & 1) * 2 + 1];
  // Each pair (w0, w1) yields one normal here: even i uses the cosine, odd i
  // the sine of a different pair, so neighbouring elements are independent.
  double u1 = (static_cast<double>(w0) + 0.5) * 2.3283064365386963e-10;  // (0, 1)
  double turns = static_cast<double>(w1) * 2.3283064365386963e-10;       // [0, 1)
  double radius = exact_sqrt(-2.0 * exact_log(u1));
  double s, c;
  exact_sincos_turns(turns, &s, &c);
  double z = (i & 1) ? radius * s : radius * c;
  return static_cast<float>(exact_fma(z, std, mean));
}

}  // namespace lmk
