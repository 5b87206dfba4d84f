// Element-wise kernels (math in math/elementwise_math.h): binary ops with
// NumPy broadcasting and their gradients, ops with a scalar, unary ops and
// their gradients, and target += alpha * src. Raw pointers and a params
// struct; ops/elementwise.cc validates and schedules them.
//
// `dtype` is the storage type of every tensor of a call (float32, bfloat16,
// float16, or float64 on the CPU); the arithmetic is in float (double for
// float64) with one rounding on store. Outputs are contiguous; inputs are
// read through a StridedLayout (binary ops) or are contiguous.
#pragma once
#include <cstdint>
#include <type_traits>

#include "kernels/elementwise/float_dispatch.h"
#include "kernels/elementwise/strided_layout.h"
#include "math/elementwise_math.h"
#include "runtime/dtype.h"

namespace lmk::kernels {

struct BinaryParams {
  DType dtype = DType::Float32;
  BinaryOp op = BinaryOp::Add;
  StridedLayout layout;  // output shape; operand 0 = a, operand 1 = b
  const void* a = nullptr;
  const void* b = nullptr;
  void* out = nullptr;
};

// ga_full = d/da * gy and gb_full = d/db * gy at every output element (the
// caller sums them down to a's and b's shapes). gy is contiguous like the
// output; either of ga/gb may be null (not wanted).
struct BinaryBackwardParams {
  DType dtype = DType::Float32;
  BinaryOp op = BinaryOp::Add;
  StridedLayout layout;
  const void* a = nullptr;
  const void* b = nullptr;
  const void* gy = nullptr;
  void* ga = nullptr;
  void* gb = nullptr;
};

struct ScalarParams {
  DType dtype = DType::Float32;
  ScalarOp op = ScalarOp::Add;
  int64_t n = 0;
  double s = 0;  // converted to the compute type once
  const void* x = nullptr;
  void* out = nullptr;
};

struct UnaryParams {
  DType dtype = DType::Float32;
  UnaryOp op = UnaryOp::Neg;
  int64_t n = 0;
  const void* x = nullptr;
  void* out = nullptr;
};

// gx = unary_grad(x, y, gy); x or y may be null when the op does not read it.
struct UnaryBackwardParams {
  DType dtype = DType::Float32;
  UnaryOp op = UnaryOp::Neg;
  int64_t n = 0;
  const void* x = nullptr;
  const void* y = nullptr;
  const void* gy = nullptr;
  void* gx = nullptr;
};

// target[i] += alpha * src[i] (in place; same dtype and size).
struct AxpyParams {
  DType dtype = DType::Float32;
  int64_t n = 0;
  double alpha = 1;
  void* target = nullptr;
  const void* src = nullptr;
};

// Calls fn(std::integral_constant<Op, op>{}) so the backends instantiate one
// kernel per op (read back as decltype(c)::value). Op is one of the op enums,
// whose values run from 0 to `last`.
template <typename Op, Op last, int32_t kValue = 0, typename Fn>
void dispatch_op_value(Op op, Fn&& fn) {
  if (static_cast<int32_t>(op) == kValue) {
    fn(std::integral_constant<Op, static_cast<Op>(kValue)>{});
  } else if constexpr (kValue < static_cast<int32_t>(last)) {
    dispatch_op_value<Op, last, kValue + 1>(op, fn);
  }
}
template <typename Fn>
void dispatch_op(BinaryOp op, Fn&& fn) {
  dispatch_op_value<BinaryOp, BinaryOp::Maximum>(op, fn);
}
template <typename Fn>
void dispatch_op(ScalarOp op, Fn&& fn) {
  dispatch_op_value<ScalarOp, ScalarOp::DivBy>(op, fn);
}
template <typename Fn>
void dispatch_op(UnaryOp op, Fn&& fn) {
  dispatch_op_value<UnaryOp, UnaryOp::Abs>(op, fn);
}

// fn(TypeTag<T>{}, op constant) for the params' dtype (dispatch_float) and op.
template <bool kWithDouble = true, typename Params, typename Fn>
void dispatch_float_and_op(const Params& p, Fn&& fn) {
  dispatch_float<kWithDouble>(p.dtype, [&](auto tag) { dispatch_op(p.op, [&](auto op) { fn(tag, op); }); });
}

void binary_cpu(const BinaryParams& p);
void binary_backward_cpu(const BinaryBackwardParams& p);
void scalar_op_cpu(const ScalarParams& p);
void unary_cpu(const UnaryParams& p);
void unary_backward_cpu(const UnaryBackwardParams& p);
void axpy_cpu(const AxpyParams& p);

void binary_cuda(const BinaryParams& p, void* stream);
void binary_backward_cuda(const BinaryBackwardParams& p, void* stream);
void scalar_op_cuda(const ScalarParams& p, void* stream);
void unary_cuda(const UnaryParams& p, void* stream);
void unary_backward_cuda(const UnaryBackwardParams& p, void* stream);
void axpy_cuda(const AxpyParams& p, void* stream);

}  // namespace lmk::kernels
