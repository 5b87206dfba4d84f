#include "ops/norm.h"

#include <cmath>

#include "kernels/norm/norm.h"
#include "ops/arg_checks.h"
#include "ops/op_task.h"
#include "runtime/cuda_call.h"

namespace lmk::ops {
namespace {

struct Rows {
  int64_t rows = 1, C = 0;
  Shape stat_shape;  // x.shape without the last axis
};

Rows check_x(const Tensor& x, const char* fn) {
  check_float(x, fn, "x");
  if (x.shape.empty() || x.shape.back() < 1) {
    throw_range_error(fn, ": x must have shape [..., C] with C >= 1, got ", shape_string(x.shape));
  }
  Rows r;
  r.C = x.shape.back();
  r.stat_shape.assign(x.shape.begin(), x.shape.end() - 1);
  for (int64_t s : r.stat_shape) r.rows *= s;
  return r;
}

void check_param(const Tensor& t, const Tensor& x, int64_t C, const char* fn, const char* arg) {
  check_like(t, x.device(), x.dtype, fn, arg, "x");
  if (t.shape != Shape{C}) {
    throw_range_error(fn, ": ", arg, " must have shape [C] = [", C, "] (C from x ", shape_string(x.shape), "), got ",
                      shape_string(t.shape));
  }
}

void check_stat(const Tensor& t, const Tensor& x, const Rows& r, const char* fn, const char* arg) {
  check_like(t, x.device(), accumulation_dtype(x.dtype), fn, arg, "x's statistics (float32, float64 for float64 x)");
  if (t.shape != r.stat_shape) {
    throw_range_error(fn, ": ", arg, " must have shape [...] = ", shape_string(r.stat_shape), " (x ",
                      shape_string(x.shape), " without its last axis), got ", shape_string(t.shape));
  }
}

double resolve_eps(std::optional<double> eps, double fallback, const char* fn) {
  double value = eps.value_or(fallback);
  if (!(value >= 0) || !std::isfinite(value))
    throw_range_error(fn, ": eps must be a finite number >= 0, got ", js_number(value));
  return value;
}

void run_forward(OpTask& task, const kernels::NormParams& p) {
  task.may_run_inline();
  task.enqueue([p] { kernels::norm_forward_cpu(p); },
               [p](void* s) { LMK_CUDA_CALL(kernels::norm_forward_cuda(p, s)); });
}

void run_backward(OpTask& task, const kernels::NormParams& p) {
  task.may_run_inline();
  task.enqueue([p] { kernels::norm_backward_cpu(p); },
               [p](void* s) { LMK_CUDA_CALL(kernels::norm_backward_cuda(p, s)); });
}

}  // namespace

LayerNormResult layer_norm(const Tensor& x, const std::optional<Tensor>& weight, const std::optional<Tensor>& bias,
                           std::optional<double> eps_option) {
  const char* fn = "ops.layerNorm";
  Rows r = check_x(x, fn);
  if (weight) check_param(*weight, x, r.C, fn, "weight");
  if (bias) check_param(*bias, x, r.C, fn, "bias");
  const double eps = resolve_eps(eps_option, 1e-5, fn);
  OpTask task(fn, x.device());
  LayerNormResult out;
  out.y = task.output(x.shape, x.dtype);
  out.mean = task.output(r.stat_shape, accumulation_dtype(x.dtype));
  out.rstd = task.output(r.stat_shape, accumulation_dtype(x.dtype));
  task.reads(x, weight, bias);
  kernels::NormParams p;
  p.dtype = x.dtype;
  p.rows = r.rows;
  p.C = r.C;
  p.eps = eps;
  p.x = x.data();
  p.weight = weight ? weight->data() : nullptr;
  p.bias = bias ? bias->data() : nullptr;
  p.y = out.y.data();
  p.mean = out.mean.data();
  p.rstd = out.rstd.data();
  run_forward(task, p);
  return out;
}

NormGrads layer_norm_backward(const Tensor& x, const std::optional<Tensor>& weight, const Tensor& mean,
                              const Tensor& rstd, const Tensor& gy, bool want_bias) {
  const char* fn = "ops.layerNormBackward";
  Rows r = check_x(x, fn);
  if (weight) check_param(*weight, x, r.C, fn, "weight");
  check_stat(mean, x, r, fn, "mean");
  check_stat(rstd, x, r, fn, "rstd");
  check_like(gy, x.device(), x.dtype, fn, "gy", "x");
  if (gy.shape != x.shape) {
    throw_range_error(fn, ": gy must have the shape of x ", shape_string(x.shape), ", got ", shape_string(gy.shape));
  }
  OpTask task(fn, x.device());
  NormGrads g;
  g.gx = task.output(x.shape, x.dtype);
  if (weight) g.gweight = task.output({r.C}, x.dtype);
  if (want_bias) g.gbias = task.output({r.C}, x.dtype);
  task.reads(x, weight, mean, rstd, gy);
  kernels::NormParams p;
  p.dtype = x.dtype;
  p.rows = r.rows;
  p.C = r.C;
  p.x = x.data();
  p.weight = weight ? weight->data() : nullptr;
  p.mean = mean.data();
  p.rstd = rstd.data();
  p.gy = gy.data();
  p.gx = g.gx.data();
  p.gweight = g.gweight ? g.gweight->data() : nullptr;
  p.gbias = g.gbias ? g.gbias->data() : nullptr;
  run_backward(task, p);
  return g;
}

RmsNormResult rms_norm(const Tensor& x, const std::optional<Tensor>& weight, std::optional<double> eps_option) {
  const char* fn = "ops.rmsNorm";
  Rows r = check_x(x, fn);
  if (weight) check_param(*weight, x, r.C, fn, "weight");
  const double eps = resolve_eps(eps_option, 1e-6, fn);
  OpTask task(fn, x.device());
  RmsNormResult out;
  out.y = task.output(x.shape, x.dtype);
  out.rstd = task.output(r.stat_shape, accumulation_dtype(x.dtype));
  task.reads(x, weight);
  kernels::NormParams p;
  p.dtype = x.dtype;
  p.rms = true;
  p.rows = r.rows;
  p.C = r.C;
  p.eps = eps;
  p.x = x.data();
  p.weight = weight ? weight->data() : nullptr;
  p.y = out.y.data();
  p.rstd = out.rstd.data();
  run_forward(task, p);
  return out;
}

NormGrads rms_norm_backward(const Tensor& x, const std::optional<Tensor>& weight, const Tensor& rstd,
                            const Tensor& gy) {
  const char* fn = "ops.rmsNormBackward";
  Rows r = check_x(x, fn);
  if (weight) check_param(*weight, x, r.C, fn, "weight");
  check_stat(rstd, x, r, fn, "rstd");
  check_like(gy, x.device(), x.dtype, fn, "gy", "x");
  if (gy.shape != x.shape) {
    throw_range_error(fn, ": gy must have the shape of x ", shape_string(x.shape), ", got ", shape_string(gy.shape));
  }
  OpTask task(fn, x.device());
  NormGrads g;
  g.gx = task.output(x.shape, x.dtype);
  if (weight) g.gweight = task.output({r.C}, x.dtype);
  task.reads(x, weight, rstd, gy);
  kernels::NormParams p;
  p.dtype = x.dtype;
  p.rms = true;
  p.rows = r.rows;
  p.C = r.C;
  p.x = x.data();
  p.weight = weight ? weight->data() : nullptr;
  p.rstd = rstd.data();
  p.gy = gy.data();
  p.gx = g.gx.data();
  p.gweight = g.gweight ? g.gweight->data() : nullptr;
  run_backward(task, p);
  return g;
}

}  // namespace lmk::ops
