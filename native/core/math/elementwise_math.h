// Scalar definitions of the dense element-wise ops and their derivatives, in
// the compute type C (float, or double for float64), shared by the CPU and
// CUDA kernels so the two cannot drift apart.
//
//   binary:  add a+b, sub a-b, mul a*b, div a/b, maximum max(a,b) (NaN propagates)
//   scalar:  add x+s, mul x*s, pow x^s, rsub s-x, div_by s/x
//   unary:   neg, exp, log, sigmoid 1/(1+e^-x), relu max(x,0), square x^2,
//            tanh, silu x*sigmoid(x), sqrt, abs
//   unary_grad(x, y, gy) = gy * d op(x)/dx, written with whichever of the input
//   x and output y is natural (PyTorch's choices): exp, sigmoid, tanh and sqrt
//   use y; log, relu, square, silu and abs use x; neg uses neither.
//   binary gradients (before reducing over broadcast dims): d/da, d/db of the
//   binary op times gy; maximum splits gy in half between tied inputs (as
//   PyTorch does).
#pragma once
#include <math.h>

#include <cmath>
#include <cstdint>

#include "math/host_device.h"

namespace lmk {

// Values 0, 1, ...; kernels/elementwise/elementwise.h (dispatch_op) names the last of each.
enum class BinaryOp : int32_t { Add = 0, Sub, Mul, Div, Maximum };
enum class ScalarOp : int32_t { Add = 0, Mul, Pow, RSub, DivBy };
enum class UnaryOp : int32_t { Neg = 0, Exp, Log, Sigmoid, Relu, Square, Tanh, Silu, Sqrt, Abs };

// Whether unary_grad reads the forward input x / output y.
constexpr bool unary_grad_needs_x(UnaryOp op) {
  return op == UnaryOp::Log || op == UnaryOp::Relu || op == UnaryOp::Square || op == UnaryOp::Silu ||
         op == UnaryOp::Abs;
}
constexpr bool unary_grad_needs_y(UnaryOp op) {
  return op == UnaryOp::Exp || op == UnaryOp::Sigmoid || op == UnaryOp::Tanh || op == UnaryOp::Sqrt;
}

LMK_HOST_DEVICE float dense_exp(float x) { return expf(x); }
LMK_HOST_DEVICE double dense_exp(double x) { return exp(x); }
LMK_HOST_DEVICE float dense_log(float x) { return logf(x); }
LMK_HOST_DEVICE double dense_log(double x) { return log(x); }
LMK_HOST_DEVICE float dense_tanh(float x) { return tanhf(x); }
LMK_HOST_DEVICE double dense_tanh(double x) { return tanh(x); }
LMK_HOST_DEVICE float dense_sqrt(float x) { return sqrtf(x); }
LMK_HOST_DEVICE double dense_sqrt(double x) { return sqrt(x); }
LMK_HOST_DEVICE float dense_abs(float x) { return fabsf(x); }
LMK_HOST_DEVICE double dense_abs(double x) { return fabs(x); }
LMK_HOST_DEVICE float dense_pow(float x, float s) { return powf(x, s); }
LMK_HOST_DEVICE double dense_pow(double x, double s) { return pow(x, s); }

// 1/(1+e^-x) without overflow: e^-|x| never exceeds 1.
template <typename C>
LMK_HOST_DEVICE C dense_sigmoid(C x) {
  C e = dense_exp(-dense_abs(x));
  C r = C(1) / (C(1) + e);
  return x >= C(0) ? r : e * r;
}

template <BinaryOp Op, typename C>
LMK_HOST_DEVICE C binary_value(C a, C b) {
  if constexpr (Op == BinaryOp::Add) return a + b;
  if constexpr (Op == BinaryOp::Sub) return a - b;
  if constexpr (Op == BinaryOp::Mul) return a * b;
  if constexpr (Op == BinaryOp::Div) return a / b;
  if constexpr (Op == BinaryOp::Maximum) return (a > b || a != a) ? a : b;
  return C(0);
}

// d/da and d/db of the binary op, times gy.
template <BinaryOp Op, typename C>
LMK_HOST_DEVICE void binary_grads(C a, C b, C gy, C* ga, C* gb) {
  if constexpr (Op == BinaryOp::Add) {
    *ga = gy;
    *gb = gy;
  }
  if constexpr (Op == BinaryOp::Sub) {
    *ga = gy;
    *gb = -gy;
  }
  if constexpr (Op == BinaryOp::Mul) {
    *ga = gy * b;
    *gb = gy * a;
  }
  if constexpr (Op == BinaryOp::Div) {
    *ga = gy / b;
    *gb = -gy * a / (b * b);
  }
  if constexpr (Op == BinaryOp::Maximum) {
    C share = a == b ? gy * C(0.5) : gy;
    *ga = a < b ? C(0) : share;
    *gb = a > b ? C(0) : share;
  }
}

template <ScalarOp Op, typename C>
LMK_HOST_DEVICE C scalar_value(C x, C s) {
  if constexpr (Op == ScalarOp::Add) return x + s;
  if constexpr (Op == ScalarOp::Mul) return x * s;
  if constexpr (Op == ScalarOp::Pow) return s == C(2) ? x * x : dense_pow(x, s);
  if constexpr (Op == ScalarOp::RSub) return s - x;
  if constexpr (Op == ScalarOp::DivBy) return s / x;
  return C(0);
}

template <UnaryOp Op, typename C>
LMK_HOST_DEVICE C unary_value(C x) {
  if constexpr (Op == UnaryOp::Neg) return -x;
  if constexpr (Op == UnaryOp::Exp) return dense_exp(x);
  if constexpr (Op == UnaryOp::Log) return dense_log(x);
  if constexpr (Op == UnaryOp::Sigmoid) return dense_sigmoid(x);
  if constexpr (Op == UnaryOp::Relu) return (x > C(0) || x != x) ? x : C(0);
  if constexpr (Op == UnaryOp::Square) return x * x;
  if constexpr (Op == UnaryOp::Tanh) return dense_tanh(x);
  if constexpr (Op == UnaryOp::Silu) return x * dense_sigmoid(x);
  if constexpr (Op == UnaryOp::Sqrt) return dense_sqrt(x);
  if constexpr (Op == UnaryOp::Abs) return dense_abs(x);
  return C(0);
}

template <UnaryOp Op, typename C>
LMK_HOST_DEVICE C unary_grad(C x, C y, C gy) {
  if constexpr (Op == UnaryOp::Neg) return -gy;
  if constexpr (Op == UnaryOp::Exp) return gy * y;
  if constexpr (Op == UnaryOp::Log) return gy / x;
  if constexpr (Op == UnaryOp::Sigmoid) return gy * y * (C(1) - y);
  if constexpr (Op == UnaryOp::Relu) return x > C(0) ? gy : C(0);
  if constexpr (Op == UnaryOp::Square) return C(2) * x * gy;
  if constexpr (Op == UnaryOp::Tanh) return gy * (C(1) - y * y);
  if constexpr (Op == UnaryOp::Silu) {
    C s = dense_sigmoid(x);
    return gy * s * (C(1) + x * (C(1) - s));
  }
  if constexpr (Op == UnaryOp::Sqrt) return gy / (C(2) * y);
  if constexpr (Op == UnaryOp::Abs) return x > C(0) ? gy : (x < C(0) ? -gy : C(0));
  return C(0);
}

}  // namespace lmk
