#include "ops/optim.h"

#include <cmath>

#include "kernels/optim/optim.h"
#include "ops/arg_checks.h"
#include "ops/op_task.h"
#include "ops/tensor_ops.h"
#include "runtime/cuda_call.h"

namespace lmk::ops {
namespace {

void check_hyper(double value, double low, double high, bool high_open, const char* fn, const char* name) {
  bool ok = std::isfinite(value) && value >= low && (high_open ? value < high : value <= high);
  if (!ok) {
    throw_range_error(fn, ": ", name, " must be a finite number in [", low, ", ", js_number(high),
                      high_open ? ")" : "]", ", got ", js_number(value));
  }
}

}  // namespace

AdamwHyper adamw_hyper(std::optional<double> lr, std::optional<double> beta1, std::optional<double> beta2,
                       std::optional<double> eps, std::optional<double> weight_decay, const char* fn) {
  if (!lr) throw_type_error(fn, ": lr is required (a number)");
  const AdamwHyper defaults;
  AdamwHyper h{*lr, beta1.value_or(defaults.beta1), beta2.value_or(defaults.beta2), eps.value_or(defaults.eps),
               weight_decay.value_or(defaults.weight_decay)};
  const double inf = INFINITY;
  check_hyper(h.lr, 0, inf, true, fn, "lr");
  check_hyper(h.beta1, 0, 1, true, fn, "beta1");
  check_hyper(h.beta2, 0, 1, true, fn, "beta2");
  check_hyper(h.eps, 0, inf, true, fn, "eps");
  check_hyper(h.weight_decay, 0, inf, true, fn, "weightDecay");
  return h;
}

void adamw_step_(const AdamwArgs& a) {
  const char* fn = "optim.AdamW.step";
  check_float(a.param, fn, "param");
  check_like(a.grad, a.param.device(), a.param.dtype, fn, "grad", "param");
  check_tensor(a.exp_avg, fn, "expAvg");
  const DType acc = accumulation_dtype(a.param.dtype);
  const DType moment = a.exp_avg.dtype == a.param.dtype ? a.param.dtype : acc;
  check_like(a.exp_avg, a.param.device(), moment, fn, "expAvg",
             "param's accumulation dtype (float32, float64 for float64 param) or param");
  check_like(a.exp_avg_sq, a.param.device(), moment, fn, "expAvgSq", "expAvg");
  for (auto [t, name] :
       {std::pair<const Tensor*, const char*>{&a.grad, "grad"}, {&a.exp_avg, "expAvg"}, {&a.exp_avg_sq, "expAvgSq"}}) {
    if (t->shape != a.param.shape) {
      throw_range_error(fn, ": ", name, " must have the shape of param ", shape_string(a.param.shape), ", got ",
                        shape_string(t->shape));
    }
  }
  adamw_hyper(a.lr, a.beta1, a.beta2, a.eps, a.weight_decay, fn);
  if (!(a.step >= 1) || a.step != std::floor(a.step) || a.step > 9007199254740992.0) {
    throw_range_error(fn, ": step must be an integer >= 1 (1-based, this step included), got ", a.step);
  }
  OpTask task(fn, a.param.device());
  task.writes(a.param);
  task.writes(a.exp_avg);
  task.writes(a.exp_avg_sq);
  task.read(a.grad);
  kernels::AdamwParams p;
  p.param_dtype = a.param.dtype;
  p.moment_dtype = moment;
  p.n = a.param.numel();
  p.param = a.param.data();
  p.grad = a.grad.data();
  p.exp_avg = a.exp_avg.data();
  p.exp_avg_sq = a.exp_avg_sq.data();
  p.lr = a.lr;
  p.beta1 = a.beta1;
  p.beta2 = a.beta2;
  p.eps = a.eps;
  p.weight_decay = a.weight_decay;
  // As torch.optim.AdamW computes them (Python floats).
  const double bias_correction1 = 1 - std::pow(a.beta1, a.step);
  const double bias_correction2 = 1 - std::pow(a.beta2, a.step);
  p.step_size = a.lr / bias_correction1;
  p.bc2_sqrt = std::sqrt(bias_correction2);
  task.may_run_inline();
  task.enqueue([p] { kernels::adamw_cpu(p); }, [p](void* s) { LMK_CUDA_CALL(kernels::adamw_cuda(p, s)); });
}

Tensor grad_norm_clip_(const std::vector<Tensor>& grads, double max_norm) {
  const char* fn = "clipGradNorm";
  if (!(max_norm > 0)) throw_range_error(fn, ": maxNorm must be > 0, got ", js_number(max_norm));
  if (grads.empty()) return full({}, 0.0, DType::Float32, Device{DeviceKind::CPU, 0}, fn);
  check_float(grads[0], fn, "grads[0]");
  const Device device = grads[0].device();
  const DType dtype = grads[0].dtype;
  for (size_t i = 0; i < grads.size(); ++i) {
    std::string arg = lmk::concat("grads[", i, "]");
    check_like(grads[i], device, dtype, fn, arg.c_str(), "grads[0]");
  }
  OpTask task(fn, device);
  kernels::GradClipParams p;
  p.dtype = dtype;
  p.max_norm = max_norm;
  for (const Tensor& g : grads) {
    task.writes(g);
    p.grads.push_back(g.data());
    p.sizes.push_back(g.numel());
  }
  Tensor norm = task.output({}, accumulation_dtype(dtype));
  p.norm = norm.data();
#ifdef LMK_WITH_CUDA
  if (device.is_cuda()) p.workspace = task.workspace(kernels::grad_clip_workspace_bytes_cuda(p));
#endif
  task.may_run_inline();
  task.enqueue([p] { kernels::grad_clip_cpu(p); }, [p](void* s) { LMK_CUDA_CALL(kernels::grad_clip_cuda(p, s)); });
  return norm;
}

}  // namespace lmk::ops
