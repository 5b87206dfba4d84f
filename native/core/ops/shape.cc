#include "ops/shape.h"

#include "kernels/creation/creation.h"
#include "kernels/shape/shape.h"
#include "ops/arg_checks.h"
#include "ops/op_task.h"
#include "runtime/cuda_call.h"

namespace lmk::ops {
namespace {

int64_t product(const Shape& shape, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t d = begin; d < end; ++d) p *= shape[d];
  return p;
}

// Runs block copies (and first a zero fill of `zero`, when given) as the task's kernel.
void enqueue_copies(OpTask& task, std::vector<kernels::BlockCopyParams> copies, const Tensor* zero) {
  void* zero_data = zero ? zero->data() : nullptr;
  DType zero_dtype = zero ? zero->dtype : DType::Float32;
  int64_t zero_n = zero ? zero->numel() : 0;
  task.may_run_inline();
  task.enqueue(
      [=] {
        if (zero_data) kernels::fill_cpu(zero_data, zero_dtype, zero_n, 0.0);
        for (const auto& c : copies) kernels::block_copy_cpu(c);
      },
      [=](void* s) {
        if (zero_data) LMK_CUDA_CALL(kernels::fill_cuda(zero_data, zero_dtype, zero_n, 0.0, s));
        for (const auto& c : copies) {
          (void)c;
          LMK_CUDA_CALL(kernels::block_copy_cuda(c, s));
        }
      });
}

struct SliceRange {
  int64_t dim, start, end;
};

SliceRange normalize_slice(const Shape& shape, int64_t dim, int64_t start, int64_t end, const char* fn) {
  SliceRange r;
  r.dim = normalize_dim(dim, static_cast<int64_t>(shape.size()), fn, "dim");
  const int64_t size = shape[r.dim];
  r.start = start < 0 ? start + size : start;
  r.end = end < 0 ? end + size : end;
  if (r.start < 0 || r.end > size || r.start > r.end) {
    throw_range_error(fn, ": start ", start, " and end ", end, " are out of range for dim ", r.dim, " of size ", size,
                      " (need 0 <= start <= end <= size after adding size to negatives)");
  }
  return r;
}

// The copy between a full tensor of `shape` and its slice r (contiguous).
kernels::BlockCopyParams slice_copy(const Shape& shape, const SliceRange& r, size_t elem_size, bool to_slice,
                                    const void* src, void* dst) {
  const int64_t outer = product(shape, 0, static_cast<size_t>(r.dim));
  const int64_t inner = product(shape, static_cast<size_t>(r.dim) + 1, shape.size());
  const int64_t size = shape[r.dim];
  kernels::BlockCopyParams p;
  p.elem_size = elem_size;
  p.rows = outer;
  p.row_elems = (r.end - r.start) * inner;
  int64_t full_stride = size * inner, offset = r.start * inner;
  if (to_slice) {
    p.src = static_cast<const char*>(src) + offset * static_cast<int64_t>(elem_size);
    p.src_stride = full_stride;
    p.dst = dst;
    p.dst_stride = p.row_elems;
  } else {
    p.src = src;
    p.src_stride = p.row_elems;
    p.dst = static_cast<char*>(dst) + offset * static_cast<int64_t>(elem_size);
    p.dst_stride = full_stride;
  }
  return p;
}

void check_btc(const Tensor& t, const char* fn, const char* arg) {
  if (t.shape.size() != 3) throw_range_error(fn, ": ", arg, " must have shape [B,T,C], got ", shape_string(t.shape));
}

}  // namespace

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims, const char* fn) {
  check_input(x, fn, "x");
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  if (static_cast<int64_t>(dims.size()) != rank) {
    throw_range_error(fn, ": dims must list each of the ", rank, " axes of x (shape ", shape_string(x.shape),
                      ") once, got ", dims.size(), " dims");
  }
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  std::vector<int64_t> perm;
  for (int64_t d : dims) {
    int64_t n = normalize_dim(d, rank, fn, "dims entry");
    if (seen[n]) throw_range_error(fn, ": dims must be a permutation, but axis ", n, " appears twice");
    seen[n] = true;
    perm.push_back(n);
  }
  Shape shape;
  std::vector<int64_t> own = kernels::contiguous_strides(x.shape), strides;
  for (int64_t d : perm) {
    shape.push_back(x.shape[d]);
    strides.push_back(own[d]);
  }
  OpTask task(fn, x.device());
  Tensor out = task.output(shape, x.dtype);
  task.read(x);
  kernels::StridedCopyParams p;
  p.elem_size = dtype_size(x.dtype);
  p.layout = kernels::make_strided_layout(shape, {strides}, fn);
  p.src = x.data();
  p.out = out.data();
  task.may_run_inline();
  task.enqueue([p] { kernels::strided_copy_cpu(p); },
               [p](void* s) { LMK_CUDA_CALL(kernels::strided_copy_cuda(p, s)); });
  return out;
}

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  const char* fn = "ops.concat";
  if (xs.empty()) throw_range_error(fn, ": xs must hold at least one tensor");
  check_input(xs[0], fn, "xs[0]");
  const Tensor& first = xs[0];
  const int64_t rank = static_cast<int64_t>(first.shape.size());
  if (rank == 0) throw_range_error(fn, ": xs[0] is 0-d; concat needs tensors of rank >= 1");
  const int64_t d = normalize_dim(dim, rank, fn, "dim");
  int64_t total = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    std::string arg = lmk::concat("xs[", i, "]");
    check_like(xs[i], first, fn, arg.c_str(), "xs[0]");
    bool same = xs[i].shape.size() == first.shape.size();
    for (int64_t k = 0; same && k < rank; ++k) same = k == d || xs[i].shape[k] == first.shape[k];
    if (!same) {
      throw_range_error(fn, ": ", arg, " has shape ", shape_string(xs[i].shape), " but xs[0] has shape ",
                        shape_string(first.shape), "; all sizes but dim ", d, " must agree");
    }
    total += xs[i].shape[d];
  }
  Shape shape = first.shape;
  shape[d] = total;
  OpTask task(fn, first.device());
  Tensor out = task.output(shape, first.dtype);
  const size_t es = dtype_size(first.dtype);
  const int64_t outer = product(shape, 0, static_cast<size_t>(d));
  const int64_t inner = product(shape, static_cast<size_t>(d) + 1, shape.size());
  std::vector<kernels::BlockCopyParams> copies;
  int64_t offset = 0;
  for (const Tensor& x : xs) {
    kernels::BlockCopyParams p;
    p.elem_size = es;
    p.rows = outer;
    p.row_elems = x.shape[d] * inner;
    p.src = x.data();
    p.src_stride = p.row_elems;
    p.dst = static_cast<char*>(out.data()) + offset * inner * static_cast<int64_t>(es);
    p.dst_stride = total * inner;
    copies.push_back(p);
    task.read(x);
    offset += x.shape[d];
  }
  enqueue_copies(task, std::move(copies), nullptr);
  return out;
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end) {
  const char* fn = "ops.slice";
  check_input(x, fn, "x");
  SliceRange r = normalize_slice(x.shape, dim, start, end, fn);
  Shape shape = x.shape;
  shape[r.dim] = r.end - r.start;
  OpTask task(fn, x.device());
  Tensor out = task.output(shape, x.dtype);
  task.read(x);
  enqueue_copies(task, {slice_copy(x.shape, r, dtype_size(x.dtype), true, x.data(), out.data())}, nullptr);
  return out;
}

Tensor slice_backward(const Tensor& g, const Shape& input_shape, int64_t dim, int64_t start, int64_t end) {
  const char* fn = "ops.sliceBackward";
  check_input(g, fn, "g");
  for (int64_t s : input_shape) {
    if (s < 0) throw_range_error(fn, ": inputShape must have non-negative sizes, got ", shape_string(input_shape));
  }
  SliceRange r = normalize_slice(input_shape, dim, start, end, fn);
  Shape shape = input_shape;
  shape[r.dim] = r.end - r.start;
  if (g.shape != shape) {
    throw_range_error(fn, ": g must have the slice's shape ", shape_string(shape), ", got ", shape_string(g.shape));
  }
  OpTask task(fn, g.device());
  Tensor out = task.output(input_shape, g.dtype);
  task.read(g);
  enqueue_copies(task, {slice_copy(input_shape, r, dtype_size(g.dtype), false, g.data(), out.data())}, &out);
  return out;
}

Tensor token_shift(const Tensor& x) {
  const char* fn = "ops.tokenShift";
  check_input(x, fn, "x");
  check_btc(x, fn, "x");
  const int64_t B = x.shape[0], T = x.shape[1], C = x.shape[2];
  OpTask task(fn, x.device());
  Tensor out = task.output(x.shape, x.dtype);
  task.read(x);
  const size_t es = dtype_size(x.dtype);
  kernels::BlockCopyParams p;
  p.elem_size = es;
  p.rows = T > 1 ? B : 0;
  p.row_elems = (T - 1) * C;
  p.src = x.data();
  p.src_stride = T * C;
  p.dst = static_cast<char*>(out.data()) + C * static_cast<int64_t>(es);
  p.dst_stride = T * C;
  enqueue_copies(task, {p}, &out);
  return out;
}

Tensor token_shift_backward(const Tensor& g) {
  const char* fn = "ops.tokenShiftBackward";
  check_input(g, fn, "g");
  check_btc(g, fn, "g");
  const int64_t B = g.shape[0], T = g.shape[1], C = g.shape[2];
  OpTask task(fn, g.device());
  Tensor out = task.output(g.shape, g.dtype);
  task.read(g);
  const size_t es = dtype_size(g.dtype);
  kernels::BlockCopyParams p;
  p.elem_size = es;
  p.rows = T > 1 ? B : 0;
  p.row_elems = (T - 1) * C;
  p.src = static_cast<const char*>(g.data()) + C * static_cast<int64_t>(es);
  p.src_stride = T * C;
  p.dst = out.data();
  p.dst_stride = T * C;
  enqueue_copies(task, {p}, &out);
  return out;
}

}  // namespace lmk::ops
