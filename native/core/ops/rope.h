// Rotary position embedding with explicit positions (math/rope_angle.h:
// interleaved pairs (x[2i], x[2i+1]) rotated by pos·base^(-2i/D)).
#pragma once
#include <optional>

#include "runtime/tensor.h"

namespace lmk::ops {

// x [..., T, D] (D even), positions int32 [T] (every row) or [B, T] with B =
// x.shape[0] (x of rank >= 3); base default 10000, a finite number > 0.
// inverse (default false) rotates by the negative angle: the gradient of the
// forward.
Tensor rope(const Tensor& x, const Tensor& positions, std::optional<double> base = std::nullopt,
            std::optional<bool> inverse = std::nullopt);

}  // namespace lmk::ops
