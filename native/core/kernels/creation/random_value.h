#pragma once
#include "kernels/creation/creation.h"
#include "math/philox.h"

namespace lmk::kernels {

// Element i of a random tensor as float32 (random ops generate in float32 and
// round once to the target dtype; float64 tensors get the same float32 values).
LMK_HOST_DEVICE float random_value(const RandomParams& p, int64_t i) {
  return p.normal ? philox_normal(p.seed, p.offset, static_cast<uint64_t>(i), p.mean, p.std)
                  : philox_uniform(p.seed, p.offset, static_cast<uint64_t>(i), static_cast<float>(p.low),
                                   static_cast<float>(p.high));
}

}  // namespace lmk::kernels
