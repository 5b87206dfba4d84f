#include "ops/norm.h"

#include <cmath>

#include "kernels/norm/norm.h"
#include "ops/dense_checks.h"
#include "ops/tensor_ops.h"
#include "runtime/cuda_call.h"

namespace lmk::ops {
namespace {

using dense::check_like;
using dense::storages;

struct Rows {
  int64_t rows = 1, C = 0;
  Shape stat_shape;  // x.shape without the last axis
};

Rows check_x(const Tensor& x, const char* fn) {
  dense::check_float(x, fn, "x");
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
  check_like(t, x.device(), dense::accumulation_dtype(x.dtype), fn, arg,
             "x's statistics (float32, float64 for float64 x)");
  if (t.shape != r.stat_shape) {
    throw_range_error(fn, ": ", arg, " must have shape [...] = ", shape_string(r.stat_shape), " (x ",
                      shape_string(x.shape), " without its last axis), got ", shape_string(t.shape));
  }
}

void check_eps(double eps, const char* fn) {
  if (!(eps >= 0) || !std::isfinite(eps)) throw_range_error(fn, ": eps must be a finite number >= 0, got ", eps);
}

void run_forward(const char* fn, const kernels::NormParams& p, const Device& device, std::vector<StoragePtr> uses,
                 std::vector<StoragePtr> outputs) {
  dense::launch(
      fn, device, [p] { kernels::norm_forward_cpu(p); },
      [p](void* s) { LMK_CUDA_CALL(kernels::norm_forward_cuda(p, s)); }, std::move(uses), std::move(outputs));
}

void run_backward(const char* fn, const kernels::NormParams& p, const Device& device, std::vector<StoragePtr> uses,
                  std::vector<StoragePtr> outputs) {
  dense::launch(
      fn, device, [p] { kernels::norm_backward_cpu(p); },
      [p](void* s) { LMK_CUDA_CALL(kernels::norm_backward_cuda(p, s)); }, std::move(uses), std::move(outputs));
}

}  // namespace

LayerNormResult layer_norm(const Tensor& x, const std::optional<Tensor>& weight, const std::optional<Tensor>& bias,
                           double eps) {
  const char* fn = "ops.layerNorm";
  Rows r = check_x(x, fn);
  if (weight) check_param(*weight, x, r.C, fn, "weight");
  if (bias) check_param(*bias, x, r.C, fn, "bias");
  check_eps(eps, fn);
  LayerNormResult out;
  out.y = empty(x.shape, x.dtype, x.device(), fn);
  out.mean = empty(r.stat_shape, dense::accumulation_dtype(x.dtype), x.device(), fn);
  out.rstd = empty(r.stat_shape, dense::accumulation_dtype(x.dtype), x.device(), fn);
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
  const Tensor* w = weight ? &*weight : nullptr;
  const Tensor* b = bias ? &*bias : nullptr;
  run_forward(fn, p, x.device(), storages({&x, w, b, &out.y, &out.mean, &out.rstd}),
              storages({&out.y, &out.mean, &out.rstd}));
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
  NormGrads g;
  g.gx = empty(x.shape, x.dtype, x.device(), fn);
  if (weight) g.gweight = empty({r.C}, x.dtype, x.device(), fn);
  if (want_bias) g.gbias = empty({r.C}, x.dtype, x.device(), fn);
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
  const Tensor* w = weight ? &*weight : nullptr;
  const Tensor* gw = g.gweight ? &*g.gweight : nullptr;
  const Tensor* gb = g.gbias ? &*g.gbias : nullptr;
  run_backward(fn, p, x.device(), storages({&x, w, &mean, &rstd, &gy, &g.gx, gw, gb}), storages({&g.gx, gw, gb}));
  return g;
}

RmsNormResult rms_norm(const Tensor& x, const std::optional<Tensor>& weight, double eps) {
  const char* fn = "ops.rmsNorm";
  Rows r = check_x(x, fn);
  if (weight) check_param(*weight, x, r.C, fn, "weight");
  check_eps(eps, fn);
  RmsNormResult out;
  out.y = empty(x.shape, x.dtype, x.device(), fn);
  out.rstd = empty(r.stat_shape, dense::accumulation_dtype(x.dtype), x.device(), fn);
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
  const Tensor* w = weight ? &*weight : nullptr;
  run_forward(fn, p, x.device(), storages({&x, w, &out.y, &out.rstd}), storages({&out.y, &out.rstd}));
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
  NormGrads g;
  g.gx = empty(x.shape, x.dtype, x.device(), fn);
  if (weight) g.gweight = empty({r.C}, x.dtype, x.device(), fn);
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
  const Tensor* w = weight ? &*weight : nullptr;
  const Tensor* gw = g.gweight ? &*g.gweight : nullptr;
  run_backward(fn, p, x.device(), storages({&x, w, &rstd, &gy, &g.gx, gw}), storages({&g.gx, gw}));
  return g;
}

}  // namespace lmk::ops
