#include "ops/reduce.h"

#include <algorithm>

#include "kernels/reduce/reduce.h"
#include "kernels/shape/shape.h"
#include "ops/arg_checks.h"
#include "ops/op_task.h"
#include "ops/shape.h"
#include "ops/tensor_ops.h"
#include "runtime/cuda_call.h"

namespace lmk::ops {
namespace {

// Σ over the middle axis of x viewed as [O, R, I] into a new tensor of `shape`.
Tensor sum_middle(const Tensor& x, int64_t O, int64_t R, int64_t I, const Shape& shape, const char* fn) {
  OpTask task(fn, x.device());
  Tensor out = task.output(shape, x.dtype);
  task.read(x);
  kernels::SumParams p;
  p.dtype = x.dtype;
  p.O = O;
  p.R = R;
  p.I = I;
  p.x = x.data();
  p.out = out.data();
#ifdef LMK_WITH_CUDA
  if (x.device().is_cuda()) {
    size_t bytes = kernels::sum_workspace_bytes_cuda(p);
    if (bytes > 0) p.workspace = task.workspace(bytes);
  }
#endif
  task.may_run_inline();
  task.enqueue([p] { kernels::sum_cpu(p); }, [p](void* s) { LMK_CUDA_CALL(kernels::sum_cuda(p, s)); });
  return out;
}

Tensor sum_impl(const Tensor& x, const std::vector<int64_t>& dims, bool keep_dim, const char* fn) {
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  std::vector<bool> reduced(static_cast<size_t>(rank), dims.empty());
  for (int64_t d : dims) {
    int64_t n = normalize_dim(d, rank, fn, "dim");
    if (reduced[n]) throw_range_error(fn, ": dim ", n, " appears more than once in dims");
    reduced[n] = true;
  }
  Shape out_shape;
  for (int64_t d = 0; d < rank; ++d) {
    if (!reduced[d])
      out_shape.push_back(x.shape[d]);
    else if (keep_dim)
      out_shape.push_back(1);
  }
  // Axes of size 1 do not matter; merge neighbours of the same kind.
  std::vector<int64_t> sizes;
  std::vector<bool> kinds;
  for (int64_t d = 0; d < rank; ++d) {
    if (x.shape[d] == 1) continue;
    if (!sizes.empty() && kinds.back() == reduced[d]) {
      sizes.back() *= x.shape[d];
    } else {
      sizes.push_back(x.shape[d]);
      kinds.push_back(reduced[d]);
    }
  }
  int groups = 0;
  for (bool k : kinds) groups += k ? 1 : 0;
  if (groups <= 1) {
    int64_t O = 1, R = 1, I = 1;
    bool after = false;
    for (size_t g = 0; g < sizes.size(); ++g) {
      if (kinds[g]) {
        R = sizes[g];
        after = true;
      } else if (after) {
        I *= sizes[g];
      } else {
        O *= sizes[g];
      }
    }
    return sum_middle(x, O, R, I, out_shape, fn);
  }
  // Summed axes apart: move them last (a copy), then sum [O, R, 1].
  std::vector<int64_t> perm;
  int64_t O = 1, R = 1;
  for (int64_t d = 0; d < rank; ++d) {
    if (!reduced[d]) {
      perm.push_back(d);
      O *= x.shape[d];
    }
  }
  for (int64_t d = 0; d < rank; ++d) {
    if (reduced[d]) {
      perm.push_back(d);
      R *= x.shape[d];
    }
  }
  Tensor moved = permute(x, perm, fn);
  return sum_middle(moved, O, R, 1, out_shape, fn);
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, std::optional<bool> keep_dim) {
  const char* fn = "ops.sum";
  check_float(x, fn, "x");
  return sum_impl(x, dims, keep_dim.value_or(false), fn);
}

Tensor sum_to_shape(const Tensor& x, const Shape& shape) {
  const char* fn = "ops.sumToShape";
  check_float(x, fn, "x");
  const int64_t rank = static_cast<int64_t>(x.shape.size()), target = static_cast<int64_t>(shape.size());
  auto fail = [&]() {
    throw_range_error(fn, ": x of shape ", shape_string(x.shape), " cannot be summed to shape ", shape_string(shape),
                      " (that shape does not broadcast to x's)");
  };
  if (target > rank) fail();
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < rank; ++d) {
    int64_t t = d - (rank - target);
    if (t < 0) {
      dims.push_back(d);
    } else if (shape[t] != x.shape[d]) {
      if (shape[t] != 1) fail();
      dims.push_back(d);
    }
  }
  for (int64_t s : shape) {
    if (s < 0) fail();
  }
  if (dims.empty()) return clone(x);
  Tensor summed = sum_impl(x, dims, true, fn);
  return view(summed, shape);
}

Tensor expand_to(const Tensor& x, const Shape& shape) {
  const char* fn = "ops.expandTo";
  check_input(x, fn, "x");
  const size_t rank = shape.size();
  bool ok = x.shape.size() <= rank;
  for (size_t d = 0; ok && d < x.shape.size(); ++d) {
    int64_t xs = x.shape[d], ts = shape[rank - x.shape.size() + d];
    ok = xs == ts || xs == 1;
  }
  for (int64_t s : shape) ok = ok && s >= 0;
  if (!ok) {
    throw_range_error(fn, ": x of shape ", shape_string(x.shape), " cannot be broadcast to shape ",
                      shape_string(shape));
  }
  OpTask task(fn, x.device());
  Tensor out = task.output(shape, x.dtype);
  task.read(x);
  kernels::StridedCopyParams p;
  p.elem_size = dtype_size(x.dtype);
  p.layout = kernels::make_strided_layout(shape, {kernels::broadcast_strides(x.shape, shape)}, fn);
  p.src = x.data();
  p.out = out.data();
  task.may_run_inline();
  task.enqueue([p] { kernels::strided_copy_cpu(p); },
               [p](void* s) { LMK_CUDA_CALL(kernels::strided_copy_cuda(p, s)); });
  return out;
}

}  // namespace lmk::ops
