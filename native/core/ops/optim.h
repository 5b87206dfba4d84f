// Optimizer steps on device tensors (kernels/optim/optim.h): the fused AdamW
// update and gradient-norm clipping, both in place.
#pragma once
#include <vector>

#include "runtime/tensor.h"

namespace lmk::ops {

struct AdamwArgs {
  Tensor param;       // float32 | bfloat16 | float16 | float64, updated in place
  Tensor grad;        // like param
  Tensor exp_avg;     // float32 (float64 for float64 param) or param's dtype, like param's shape
  Tensor exp_avg_sq;  // like exp_avg
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 1e-2;
  double step = 1;  // 1-based count of steps taken, this one included
};

// One AdamW step exactly as torch.optim.AdamW (decoupled weight decay,
// bias corrections with `step`), fused into one kernel.
void adamw_step_(const AdamwArgs& args);

// Total L2 norm of all grads (a 0-d float32 tensor, float64 for float64
// grads, like clip_grad_norm_'s result) and every grad scaled in place by
// min(1, max_norm / (norm + 1e-6)); the coefficient never leaves the device.
// No grads: a 0-d float32 zero on the CPU.
Tensor grad_norm_clip_(const std::vector<Tensor>& grads, double max_norm);

}  // namespace lmk::ops
