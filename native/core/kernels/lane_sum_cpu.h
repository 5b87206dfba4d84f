// Σ f(i) for i in [0, n) on the CPU, in kLaneSumLanes interleaved lanes
// folded by a fixed tree: the loop vectorises (one vector of float lanes) and
// the order of the additions depends only on n, never on the thread count.
#pragma once
#include <cstdint>

namespace lmk::kernels {

constexpr int64_t kLaneSumLanes = 16;

template <typename C, typename F>
C lane_sum(int64_t n, const F& f) {
  C lane[kLaneSumLanes] = {};
  const int64_t full = n - n % kLaneSumLanes;
  for (int64_t i = 0; i < full; i += kLaneSumLanes) {
    for (int64_t j = 0; j < kLaneSumLanes; ++j) lane[j] += f(i + j);
  }
  for (int64_t i = full; i < n; ++i) lane[i - full] += f(i);
  for (int64_t width = kLaneSumLanes / 2; width >= 1; width /= 2) {
    for (int64_t j = 0; j < width; ++j) lane[j] += lane[j + width];
  }
  return lane[0];
}

}  // namespace lmk::kernels
