// Optimizer kernels: the fused AdamW update (math/adamw_math.h) and
// gradient-norm clipping.
//
// AdamW: one pass over a parameter tensor updates param, expAvg and expAvgSq
// in place. param and grad share a dtype (float32, bfloat16, float16 or
// float64); the moments are float32 (float64 with float64 params), or the
// param's dtype. Arithmetic in float (double for float64), one rounding per
// stored value.
//
// Gradient clipping (torch.nn.utils.clip_grad_norm_ with the L2 norm):
//   norm = √(Σ_tensors Σ g²);  coef = min(1, maxNorm / (norm + 1e-6));  g ← g·coef
// computed on the device: sums of squares per fixed-size chunk (float), chunk
// sums added in a fixed order in double; the norm and the coefficient stay in
// device memory and the scaling kernel reads the coefficient there, so
// nothing waits for the host.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "math/adamw_math.h"
#include "runtime/dtype.h"

namespace lmk::kernels {

struct AdamwParams {
  DType param_dtype = DType::Float32;   // param and grad
  DType moment_dtype = DType::Float32;  // expAvg and expAvgSq
  int64_t n = 0;
  void* param = nullptr;
  const void* grad = nullptr;
  void* exp_avg = nullptr;
  void* exp_avg_sq = nullptr;
  double lr = 0, beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
  double step_size = 0;  // lr / (1 − β1^step)
  double bc2_sqrt = 1;   // √(1 − β2^step)
};

// The step's constants in the compute type C (host code, both backends).
template <typename C>
AdamwScalars<C> adamw_scalars(const AdamwParams& p) {
  AdamwScalars<C> s;
  s.decay = static_cast<C>(1.0 - p.lr * p.weight_decay);
  s.one_minus_beta1 = static_cast<C>(1.0 - p.beta1);
  s.beta2 = static_cast<C>(p.beta2);
  s.one_minus_beta2 = static_cast<C>(1.0 - p.beta2);
  s.step_size = static_cast<C>(p.step_size);
  s.bc2_sqrt = static_cast<C>(p.bc2_sqrt);
  s.eps = static_cast<C>(p.eps);
  return s;
}

void adamw_cpu(const AdamwParams& p);
void adamw_cuda(const AdamwParams& p, void* stream);

struct GradClipParams {
  DType dtype = DType::Float32;  // of every gradient
  std::vector<void*> grads;
  std::vector<int64_t> sizes;
  double max_norm = 1;
  void* norm = nullptr;       // 0-d output: float32 (float64 for float64 grads)
  void* workspace = nullptr;  // CUDA: grad_clip_workspace_bytes_cuda(*this)
};

void grad_clip_cpu(const GradClipParams& p);

size_t grad_clip_workspace_bytes_cuda(const GradClipParams& p);
void grad_clip_cuda(const GradClipParams& p, void* stream);

}  // namespace lmk::kernels
