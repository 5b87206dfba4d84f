// One element of PyTorch's AdamW update (torch.optim.AdamW, single-tensor
// path, amsgrad=False, maximize=False), in the compute type C:
//   p  ← p·(1 − lr·wd)                        (decoupled weight decay)
//   m  ← m + (1 − β1)·(g − m)                 (exp_avg.lerp_(g, 1 − β1))
//   v  ← v·β2 + (1 − β2)·g·g                  (exp_avg_sq.mul_(β2).addcmul_(g, g, 1 − β2))
//   p  ← p − step_size · m / (√v / bc2_sqrt + eps)
// with step_size = lr / (1 − β1^step) and bc2_sqrt = √(1 − β2^step)
// computed once per step on the host in double, as PyTorch does in Python.
#pragma once
#include <math.h>

#include "math/elementwise_math.h"
#include "math/host_device.h"

namespace lmk {

template <typename C>
struct AdamwScalars {
  C decay;  // 1 − lr·wd
  C one_minus_beta1;
  C beta2;
  C one_minus_beta2;
  C step_size;  // lr / bias_correction1
  C bc2_sqrt;   // √bias_correction2
  C eps;
};

template <typename C>
LMK_HOST_DEVICE void adamw_update(const AdamwScalars<C>& s, C g, C* p, C* m, C* v) {
  *p = *p * s.decay;
  *m = *m + s.one_minus_beta1 * (g - *m);
  *v = *v * s.beta2 + s.one_minus_beta2 * g * g;
  C denom = dense_sqrt(*v) / s.bc2_sqrt + s.eps;
  *p = *p - s.step_size * (*m / denom);
}

}  // namespace lmk
