// Rotary position embedding (RoFormer, Su et al. 2021), interleaved pairs as
// in the original RoFormer and GPT-J: within a row of D (even) features, pair
// i is (x[2i], x[2i+1]) and is rotated by the angle
//     θ = pos · base^(-2i/D)
//     (y0, y1) = (x0·cosθ − x1·sinθ,  x0·sinθ + x1·cosθ)
// The inverse rotation (sinθ → −sinθ) is the gradient of the forward. The
// angle and its sine and cosine are computed in double, so positions in the
// hundreds of thousands keep float32 accuracy; only the rotation itself runs
// in the compute type.
#pragma once
#include <math.h>

#include <cstdint>

#include "math/host_device.h"

namespace lmk {

LMK_HOST_DEVICE double rope_angle(int64_t position, int64_t pair, int64_t D, double base) {
  return static_cast<double>(position) * pow(base, -2.0 * static_cast<double>(pair) / static_cast<double>(D));
}

template <typename C>
LMK_HOST_DEVICE void rope_rotate(C x0, C x1, C cos_t, C sin_t, C* y0, C* y1) {
  *y0 = x0 * cos_t - x1 * sin_t;
  *y1 = x0 * sin_t + x1 * cos_t;
}

}  // namespace lmk
