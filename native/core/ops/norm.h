// Layer norm and RMS norm over the last axis (kernels/norm/norm.h for the
// math), forward and backward. x [..., C] (C >= 1); weight and bias [C] like
// x's dtype; mean and rstd [...] in float32 (float64 for float64 x).
#pragma once
#include <optional>

#include "runtime/tensor.h"

namespace lmk::ops {

struct LayerNormResult {
  Tensor y, mean, rstd;
};
// eps (default 1e-5, PyTorch's) is a finite number >= 0.
LayerNormResult layer_norm(const Tensor& x, const std::optional<Tensor>& weight, const std::optional<Tensor>& bias,
                           std::optional<double> eps = std::nullopt);

struct NormGrads {
  Tensor gx;
  std::optional<Tensor> gweight, gbias;
};
// gWeight iff weight is given; gBias iff want_bias (the forward had a bias).
NormGrads layer_norm_backward(const Tensor& x, const std::optional<Tensor>& weight, const Tensor& mean,
                              const Tensor& rstd, const Tensor& gy, bool want_bias);

struct RmsNormResult {
  Tensor y, rstd;
};
// eps (default 1e-6, as LLaMA's RMSNorm) is a finite number >= 0.
RmsNormResult rms_norm(const Tensor& x, const std::optional<Tensor>& weight, std::optional<double> eps = std::nullopt);

// gWeight iff weight is given.
NormGrads rms_norm_backward(const Tensor& x, const std::optional<Tensor>& weight, const Tensor& rstd, const Tensor& gy);

}  // namespace lmk::ops
