// Element-wise kernels on CUDA: one grid-stride loop per op, one thread per
// output element, operand offsets from the StridedLayout. The arithmetic is
// math/elementwise_math.h, as on the CPU.
#include <cuda_runtime.h>

#include "kernels/cuda_grid.h"
#include "kernels/cuda_launch.cuh"
#include "kernels/elementwise/elementwise.h"
#include "kernels/elementwise/float_dispatch.h"
#include "math/compute_type.h"
#include "runtime/cuda_check.h"

namespace lmk::kernels {
namespace {

constexpr int kThreads = kGridThreads;  // grid_for (kernels/cuda_grid.h) assumes it

#define LMK_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

template <typename T, BinaryOp Op>
__global__ void binary_kernel(StridedLayout layout, int64_t n, const T* a, const T* b, T* out) {
  LMK_GRID_STRIDE(i, n) {
    auto x = load_compute(a, layout_offset(layout, 0, i));
    auto y = load_compute(b, layout_offset(layout, 1, i));
    store_compute(out, i, binary_value<Op>(x, y));
  }
}

template <typename T, BinaryOp Op>
__global__ void binary_backward_kernel(StridedLayout layout, int64_t n, const T* a, const T* b, const T* gy, T* ga,
                                       T* gb) {
  using C = compute_t<T>;
  LMK_GRID_STRIDE(i, n) {
    C da, db;
    binary_grads<Op>(load_compute(a, layout_offset(layout, 0, i)), load_compute(b, layout_offset(layout, 1, i)),
                     load_compute(gy, i), &da, &db);
    if (ga) store_compute(ga, i, da);
    if (gb) store_compute(gb, i, db);
  }
}

template <typename T, ScalarOp Op>
__global__ void scalar_kernel(int64_t n, const T* x, compute_t<T> s, T* out) {
  LMK_GRID_STRIDE(i, n) { store_compute(out, i, scalar_value<Op>(load_compute(x, i), s)); }
}

template <typename T, UnaryOp Op>
__global__ void unary_kernel(int64_t n, const T* x, T* out) {
  LMK_GRID_STRIDE(i, n) { store_compute(out, i, unary_value<Op>(load_compute(x, i))); }
}

template <typename T, UnaryOp Op>
__global__ void unary_backward_kernel(int64_t n, const T* x, const T* y, const T* gy, T* gx) {
  using C = compute_t<T>;
  LMK_GRID_STRIDE(i, n) {
    C xv = unary_grad_needs_x(Op) ? load_compute(x, i) : C(0);
    C yv = unary_grad_needs_y(Op) ? load_compute(y, i) : C(0);
    store_compute(gx, i, unary_grad<Op>(xv, yv, load_compute(gy, i)));
  }
}

template <typename T>
__global__ void axpy_kernel(int64_t n, compute_t<T> alpha, T* target, const T* src) {
  LMK_GRID_STRIDE(i, n) { store_compute(target, i, load_compute(target, i) + alpha * load_compute(src, i)); }
}

template <typename T, BinaryOp Op>
void launch_binary(const BinaryParams& p, int64_t n, cudaStream_t s) {
  launch(binary_kernel<T, Op>, grid_for(n), kThreads, 0, s, p.layout, n, static_cast<const T*>(p.a),
         static_cast<const T*>(p.b), static_cast<T*>(p.out));
}

template <typename T, BinaryOp Op>
void launch_binary_backward(const BinaryBackwardParams& p, int64_t n, cudaStream_t s) {
  launch(binary_backward_kernel<T, Op>, grid_for(n), kThreads, 0, s, p.layout, n, static_cast<const T*>(p.a),
         static_cast<const T*>(p.b), static_cast<const T*>(p.gy), static_cast<T*>(p.ga), static_cast<T*>(p.gb));
}

template <typename T, ScalarOp Op>
void launch_scalar(const ScalarParams& p, cudaStream_t s) {
  launch(scalar_kernel<T, Op>, grid_for(p.n), kThreads, 0, s, p.n, static_cast<const T*>(p.x),
         static_cast<compute_t<T>>(p.s), static_cast<T*>(p.out));
}

template <typename T, UnaryOp Op>
void launch_unary(const UnaryParams& p, cudaStream_t s) {
  launch(unary_kernel<T, Op>, grid_for(p.n), kThreads, 0, s, p.n, static_cast<const T*>(p.x), static_cast<T*>(p.out));
}

template <typename T, UnaryOp Op>
void launch_unary_backward(const UnaryBackwardParams& p, cudaStream_t s) {
  launch(unary_backward_kernel<T, Op>, grid_for(p.n), kThreads, 0, s, p.n, static_cast<const T*>(p.x),
         static_cast<const T*>(p.y), static_cast<const T*>(p.gy), static_cast<T*>(p.gx));
}

}  // namespace

// Each entry point launches its kernel instantiated per (dtype, op).
void binary_cuda(const BinaryParams& p, void* stream) {
  int64_t n = p.layout.numel();
  if (n == 0) return;
  dispatch_float_and_op<false>(p, [&](auto t, auto op) {
    launch_binary<typename decltype(t)::type, decltype(op)::value>(p, n, static_cast<cudaStream_t>(stream));
  });
  cuda_check_launch("binary");
}

void binary_backward_cuda(const BinaryBackwardParams& p, void* stream) {
  int64_t n = p.layout.numel();
  if (n == 0) return;
  dispatch_float_and_op<false>(p, [&](auto t, auto op) {
    launch_binary_backward<typename decltype(t)::type, decltype(op)::value>(p, n, static_cast<cudaStream_t>(stream));
  });
  cuda_check_launch("binary backward");
}

void scalar_op_cuda(const ScalarParams& p, void* stream) {
  if (p.n == 0) return;
  dispatch_float_and_op<false>(p, [&](auto t, auto op) {
    launch_scalar<typename decltype(t)::type, decltype(op)::value>(p, static_cast<cudaStream_t>(stream));
  });
  cuda_check_launch("scalar op");
}

void unary_cuda(const UnaryParams& p, void* stream) {
  if (p.n == 0) return;
  dispatch_float_and_op<false>(p, [&](auto t, auto op) {
    launch_unary<typename decltype(t)::type, decltype(op)::value>(p, static_cast<cudaStream_t>(stream));
  });
  cuda_check_launch("unary");
}

void unary_backward_cuda(const UnaryBackwardParams& p, void* stream) {
  if (p.n == 0) return;
  dispatch_float_and_op<false>(p, [&](auto t, auto op) {
    launch_unary_backward<typename decltype(t)::type, decltype(op)::value>(p, static_cast<cudaStream_t>(stream));
  });
  cuda_check_launch("unary backward");
}

void axpy_cuda(const AxpyParams& p, void* stream) {
  if (p.n == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  dispatch_float<false>(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(axpy_kernel<T>, grid_for(p.n), kThreads, 0, s, p.n, static_cast<float>(p.alpha), static_cast<T*>(p.target),
           static_cast<const T*>(p.src));
  });
  cuda_check_launch("addInPlace_");
}

}  // namespace lmk::kernels
