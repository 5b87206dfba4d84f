// Element-wise kernels on the CPU: plain loops over contiguous spans (see
// span_cpu.h), one instantiation per (dtype, op, innermost-stride pattern), so
// GCC vectorises the loads, the arithmetic and the stores.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include "kernels/elementwise/elementwise.h"
#include "kernels/elementwise/float_dispatch.h"
#include "kernels/elementwise/span_cpu.h"
#include "math/compute_type.h"

namespace lmk::kernels {
namespace {

// SA/SB: innermost strides known at compile time (0 = broadcast, 1 = contiguous).
template <typename T, BinaryOp Op, int SA, int SB>
void binary_span(const T* __restrict a, const T* __restrict b, T* __restrict out, int64_t n) {
  using C = compute_t<T>;
  for (int64_t i = 0; i < n; ++i) {
    C x = load_compute(a, SA * i), y = load_compute(b, SB * i);
    store_compute(out, i, binary_value<Op>(x, y));
  }
}

template <typename T, BinaryOp Op>
void binary_typed(const BinaryParams& p) {
  const T* a = static_cast<const T*>(p.a);
  const T* b = static_cast<const T*>(p.b);
  T* out = static_cast<T*>(p.out);
  for_each_span(p.layout, [&](int64_t o, int64_t n, int64_t oa, int64_t ob, int64_t sa, int64_t sb) {
    if (sa == 1 && sb == 1)
      binary_span<T, Op, 1, 1>(a + oa, b + ob, out + o, n);
    else if (sa == 1)
      binary_span<T, Op, 1, 0>(a + oa, b + ob, out + o, n);
    else if (sb == 1)
      binary_span<T, Op, 0, 1>(a + oa, b + ob, out + o, n);
    else
      binary_span<T, Op, 0, 0>(a + oa, b + ob, out + o, n);
  });
}

template <typename T, BinaryOp Op, int SA, int SB>
void binary_backward_span(const T* __restrict a, const T* __restrict b, const T* __restrict gy, T* ga, T* gb,
                          int64_t n) {
  using C = compute_t<T>;
  for (int64_t i = 0; i < n; ++i) {
    C da, db;
    binary_grads<Op>(load_compute(a, SA * i), load_compute(b, SB * i), load_compute(gy, i), &da, &db);
    if (ga) store_compute(ga, i, da);
    if (gb) store_compute(gb, i, db);
  }
}

template <typename T, BinaryOp Op>
void binary_backward_typed(const BinaryBackwardParams& p) {
  const T* a = static_cast<const T*>(p.a);
  const T* b = static_cast<const T*>(p.b);
  const T* gy = static_cast<const T*>(p.gy);
  T* ga = static_cast<T*>(p.ga);
  T* gb = static_cast<T*>(p.gb);
  for_each_span(p.layout, [&](int64_t o, int64_t n, int64_t oa, int64_t ob, int64_t sa, int64_t sb) {
    T* ga_o = ga ? ga + o : nullptr;
    T* gb_o = gb ? gb + o : nullptr;
    if (sa == 1 && sb == 1)
      binary_backward_span<T, Op, 1, 1>(a + oa, b + ob, gy + o, ga_o, gb_o, n);
    else if (sa == 1)
      binary_backward_span<T, Op, 1, 0>(a + oa, b + ob, gy + o, ga_o, gb_o, n);
    else if (sb == 1)
      binary_backward_span<T, Op, 0, 1>(a + oa, b + ob, gy + o, ga_o, gb_o, n);
    else
      binary_backward_span<T, Op, 0, 0>(a + oa, b + ob, gy + o, ga_o, gb_o, n);
  });
}

template <typename T, ScalarOp Op>
void scalar_typed(const ScalarParams& p) {
  using C = compute_t<T>;
  const T* __restrict x = static_cast<const T*>(p.x);
  T* __restrict out = static_cast<T*>(p.out);
  const C s = static_cast<C>(p.s);
  for_each_range(p.n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) store_compute(out, i, scalar_value<Op>(load_compute(x, i), s));
  });
}

template <typename T, UnaryOp Op>
void unary_typed(const UnaryParams& p) {
  const T* __restrict x = static_cast<const T*>(p.x);
  T* __restrict out = static_cast<T*>(p.out);
  for_each_range(p.n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) store_compute(out, i, unary_value<Op>(load_compute(x, i)));
  });
}

template <typename T, UnaryOp Op>
void unary_backward_typed(const UnaryBackwardParams& p) {
  using C = compute_t<T>;
  const T* __restrict x = static_cast<const T*>(p.x);
  const T* __restrict y = static_cast<const T*>(p.y);
  const T* __restrict gy = static_cast<const T*>(p.gy);
  T* __restrict gx = static_cast<T*>(p.gx);
  for_each_range(p.n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      C xv = unary_grad_needs_x(Op) ? load_compute(x, i) : C(0);
      C yv = unary_grad_needs_y(Op) ? load_compute(y, i) : C(0);
      store_compute(gx, i, unary_grad<Op>(xv, yv, load_compute(gy, i)));
    }
  });
}

template <typename T>
void axpy_typed(const AxpyParams& p) {
  using C = compute_t<T>;
  T* __restrict target = static_cast<T*>(p.target);
  const T* __restrict src = static_cast<const T*>(p.src);
  const C alpha = static_cast<C>(p.alpha);
  for_each_range(p.n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      store_compute(target, i, load_compute(target, i) + alpha * load_compute(src, i));
  });
}

}  // namespace

// Each entry point instantiates its kernel per (dtype, op).
void binary_cpu(const BinaryParams& p) {
  dispatch_float_and_op(p, [&](auto t, auto op) { binary_typed<typename decltype(t)::type, decltype(op)::value>(p); });
}
void binary_backward_cpu(const BinaryBackwardParams& p) {
  dispatch_float_and_op(
      p, [&](auto t, auto op) { binary_backward_typed<typename decltype(t)::type, decltype(op)::value>(p); });
}
void scalar_op_cpu(const ScalarParams& p) {
  dispatch_float_and_op(p, [&](auto t, auto op) { scalar_typed<typename decltype(t)::type, decltype(op)::value>(p); });
}
void unary_cpu(const UnaryParams& p) {
  dispatch_float_and_op(p, [&](auto t, auto op) { unary_typed<typename decltype(t)::type, decltype(op)::value>(p); });
}
void unary_backward_cpu(const UnaryBackwardParams& p) {
  dispatch_float_and_op(
      p, [&](auto t, auto op) { unary_backward_typed<typename decltype(t)::type, decltype(op)::value>(p); });
}

void axpy_cpu(const AxpyParams& p) {
  dispatch_float(p.dtype, [&](auto tag) { axpy_typed<typename decltype(tag)::type>(p); });
}

}  // namespace lmk::kernels
