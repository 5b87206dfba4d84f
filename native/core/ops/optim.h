// Optimizer steps on device tensors (kernels/optim/optim.h): the fused AdamW
// update and gradient-norm clipping, both in place.
#pragma once
#include <optional>
#include <vector>

#include "runtime/tensor.h"

namespace lmk::ops {

// AdamW's hyperparameters and their defaults (torch.optim.AdamW's).
struct AdamwHyper {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
};

// The hyperparameters of optim.AdamW: lr required, the others default as in
// AdamwHyper; RangeError naming `fn` for lr, eps or weightDecay outside
// [0, inf) or a beta outside [0, 1) (NaN and ±Infinity included).
AdamwHyper adamw_hyper(std::optional<double> lr, std::optional<double> beta1, std::optional<double> beta2,
                       std::optional<double> eps, std::optional<double> weight_decay, const char* fn);

struct AdamwArgs {
  Tensor param;       // float32 | bfloat16 | float16 | float64, updated in place
  Tensor grad;        // like param
  Tensor exp_avg;     // float32 (float64 for float64 param) or param's dtype, like param's shape
  Tensor exp_avg_sq;  // like exp_avg
  double lr = AdamwHyper{}.lr, beta1 = AdamwHyper{}.beta1, beta2 = AdamwHyper{}.beta2, eps = AdamwHyper{}.eps,
         weight_decay = AdamwHyper{}.weight_decay;
  double step = 1;  // 1-based count of steps taken, this one included
};

// One AdamW step exactly as torch.optim.AdamW (decoupled weight decay,
// bias corrections with `step`), fused into one kernel; the hyperparameters
// are checked as adamw_hyper checks them.
void adamw_step_(const AdamwArgs& args);

// Total L2 norm of all grads (a 0-d float32 tensor, float64 for float64
// grads, like clip_grad_norm_'s result) and every grad scaled in place by
// min(1, max_norm / (norm + 1e-6)); the coefficient never leaves the device.
// max_norm > 0 (Infinity: the norm only). No grads: a 0-d float32 zero on the CPU.
Tensor grad_norm_clip_(const std::vector<Tensor>& grads, double max_norm);

}  // namespace lmk::ops
