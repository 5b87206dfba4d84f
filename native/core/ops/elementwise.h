// Element-wise dense ops (math in math/elementwise_math.h): binary ops with
// NumPy broadcasting and their gradients, ops with a scalar, unary ops and
// their gradients, and the in-place fill_, addInPlace_, copyInto_.
//
// All tensor inputs of a call share one device and one floating dtype
// (float32, bfloat16, float16, float64 on the CPU); outputs are new and
// contiguous except for the in-place ops, which write their target. Errors
// name the op as the public API does: "ops.add", "ops.expBackward", ...
#pragma once
#include <optional>
#include <string>

#include "math/elementwise_math.h"
#include "runtime/tensor.h"

namespace lmk::ops {

// Op names as the JS API spells them; RangeError naming `fn` for another name.
BinaryOp binary_op_from_name(const std::string& name, const char* fn);  // add sub mul div maximum
ScalarOp scalar_op_from_name(const std::string& name, const char* fn);  // add mul pow rsub div_by
UnaryOp unary_op_from_name(const std::string& name,
                           const char* fn);  // neg exp log sigmoid relu square tanh silu sqrt abs

// The function names of the ops in errors, as the JS API spells them:
// "ops.add", "ops.divBy", "ops.exp", "ops.addBackward".
const char* binary_op_fn(BinaryOp op);
const char* scalar_op_fn(ScalarOp op);
const char* unary_op_fn(UnaryOp op);
const char* binary_backward_fn(BinaryOp op);
const char* unary_backward_fn(UnaryOp op);

// The broadcast of two shapes (NumPy rules); RangeError naming both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* fn, const char* a_name, const char* b_name);

// a (op) b, broadcast.
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);

// Gradients of binary(op, a, b) given gy (shaped like the output): each is
// d/da·gy (d/db·gy) summed down to a's (b's) shape. maximum gives gy to the
// larger input and half of it to each of two equal ones (as PyTorch).
struct BinaryGrads {
  Tensor ga, gb;
};
BinaryGrads binary_backward(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& gy);

// x (op) s: x+s, x*s, x^s, s-x, s/x.
Tensor scalar_op(ScalarOp op, const Tensor& x, double s);

Tensor unary(UnaryOp op, const Tensor& x);

// gy · d op(x)/dx from the forward's input x and/or output y (see
// unary_grad_needs_x/y; the one not needed may be absent).
Tensor unary_backward(UnaryOp op, const std::optional<Tensor>& x, const std::optional<Tensor>& y, const Tensor& gy);

// In place: every element of x (any dtype) = value (the values full accepts).
void fill_(const Tensor& x, double value);

// In place: target += alpha · src (same shape, dtype and device); alpha
// defaults to 1 and may be any number.
void add_in_place_(const Tensor& target, const Tensor& src, std::optional<double> alpha = std::nullopt);

// In place: target = src (same shape and device; converts when dtypes differ).
void copy_into_(const Tensor& target, const Tensor& src);

}  // namespace lmk::ops
