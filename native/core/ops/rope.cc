#include "ops/rope.h"

#include <cmath>

#include "kernels/rope/rope.h"
#include "ops/arg_checks.h"
#include "ops/op_task.h"
#include "runtime/cuda_call.h"

namespace lmk::ops {

Tensor rope(const Tensor& x, const Tensor& positions, std::optional<double> base_option, std::optional<bool> inverse) {
  const char* fn = "ops.rope";
  check_float(x, fn, "x");
  check_int32(positions, x.device(), fn, "positions", "x");
  const size_t rank = x.shape.size();
  if (rank < 2 || x.shape[rank - 1] % 2 != 0) {
    throw_range_error(fn, ": x must have shape [..., T, D] with D even, got ", shape_string(x.shape));
  }
  const double base = base_option.value_or(10000.0);
  if (!(base > 0) || !std::isfinite(base)) throw_range_error(fn, ": base must be a finite number > 0, got ", base);
  const int64_t T = x.shape[rank - 2], D = x.shape[rank - 1];
  int64_t P = 1;
  if (positions.shape.size() == 1) {
    if (positions.shape[0] != T) {
      throw_range_error(fn, ": positions must have shape [T] = [", T, "] (T from x ", shape_string(x.shape),
                        ") or [B,T], got ", shape_string(positions.shape));
    }
  } else if (positions.shape.size() == 2) {
    if (rank < 3 || positions.shape[0] != x.shape[0] || positions.shape[1] != T) {
      throw_range_error(fn, ": positions of shape [B,T] must match x's leading batch dim and T: x ",
                        shape_string(x.shape), ", positions ", shape_string(positions.shape));
    }
    P = x.shape[0];
  } else {
    throw_range_error(fn, ": positions must have shape [T] or [B,T], got ", shape_string(positions.shape));
  }
  int64_t total = x.numel();
  OpTask task(fn, x.device());
  Tensor out = task.output(x.shape, x.dtype);
  task.reads(x, positions);
  kernels::RopeParams p;
  p.dtype = x.dtype;
  p.P = P;
  p.T = T;
  p.D = D;
  p.Mid = (P * T * D) == 0 ? 0 : total / (P * T * D);
  p.base = base;
  p.inverse = inverse.value_or(false);
  p.x = x.data();
  p.positions = positions.data_as<int32_t>();
  p.out = out.data();
  task.may_run_inline();
  task.enqueue([p] { kernels::rope_cpu(p); }, [p](void* s) { LMK_CUDA_CALL(kernels::rope_cuda(p, s)); });
  return out;
}

}  // namespace lmk::ops
