// The goldfish drop rule (docs/kernels.md#goldfish; Hans et al. 2024), shared by
// the CPU and CUDA kernels so both decide every token identically.
//
//   mix(z): z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27;
//           z *= 0x94D049BB133111EB; z ^= z >> 31          (uint64, wrapping)
//   hash:   x = mix(seed + 0x9E3779B97F4A7C15);
//           for j = t−h+1 .. t (oldest first): x = mix(x ^ uint64(uint32(token_j)))
//           drop when t >= h−1 and u < 1/k
//   random: x = mix(mix(mix(seed + 0x9E3779B97F4A7C15) ^ uint64(row)) ^ uint64(t)),
//           drop when u < 1/k
//   static: drop when t >= start and (t − start) mod k == 0
//   with u = double(x >> 11) · 2^-53.
//
// Everything is integer arithmetic except u < 1/k: x >> 11 has 53 bits, so
// its conversion to double and the scaling by 2^-53 are exact, and 1/k is
// computed once on the host (correctly rounded), so the comparison is exact
// and identical on every device. Only supervised tokens (label != ignoreIndex)
// are ever dropped; that test is the caller's.
#pragma once
#include <cstdint>

#include "math/host_device.h"

namespace lmk {

constexpr uint64_t kGoldfishGamma = 0x9E3779B97F4A7C15ull;

LMK_HOST_DEVICE uint64_t goldfish_mix(uint64_t z) {
  z ^= z >> 30;
  z *= 0xBF58476D1CE4E5B9ull;
  z ^= z >> 27;
  z *= 0x94D049BB133111EBull;
  z ^= z >> 31;
  return z;
}

// u in [0, 1) from a 64-bit state: the top 53 bits, exactly.
LMK_HOST_DEVICE double goldfish_unit(uint64_t x) {
  return static_cast<double>(x >> 11) * (1.0 / 9007199254740992.0);  // 2^-53
}

enum GoldfishStrategy : int32_t { kGoldfishOff = 0, kGoldfishStatic = 1, kGoldfishHash = 2, kGoldfishRandom = 3 };

// A goldfish rule over tokens laid out [sequences, T] (flat index = seq·T + t).
struct GoldfishRule {
  int32_t strategy = kGoldfishOff;
  int64_t k = 4;
  double drop_below = 0.25;    // 1/k, computed on the host
  int64_t context_width = 13;  // h, for 'hash'
  uint64_t seed = 0;
  int64_t start_position = 0;            // for 'static'
  const int32_t* hash_tokens = nullptr;  // [sequences, T], read by 'hash'

  // True when the (supervised) token at (seq, t) is dropped from the loss.
  LMK_HOST_DEVICE bool drops(int64_t seq, int64_t t, int64_t T) const {
    switch (strategy) {
      case kGoldfishStatic: return t >= start_position && (t - start_position) % k == 0;
      case kGoldfishHash: {
        if (t < context_width - 1) return false;
        const int32_t* window = hash_tokens + seq * T + t - (context_width - 1);
        uint64_t x = goldfish_mix(seed + kGoldfishGamma);
        for (int64_t j = 0; j < context_width; ++j) {
          x = goldfish_mix(x ^ static_cast<uint64_t>(static_cast<uint32_t>(window[j])));
        }
        return goldfish_unit(x) < drop_below;
      }
      case kGoldfishRandom: {
        uint64_t x = goldfish_mix(goldfish_mix(goldfish_mix(seed + kGoldfishGamma) ^ static_cast<uint64_t>(seq)) ^
                                  static_cast<uint64_t>(t));
        return goldfish_unit(x) < drop_below;
      }
      default: return false;
    }
  }
};

}  // namespace lmk
