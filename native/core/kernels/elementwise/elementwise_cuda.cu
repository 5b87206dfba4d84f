// Element-wise kernels on CUDA: one grid-stride loop per op, one thread per
// output element, operand offsets from the StridedLayout. The arithmetic is
// math/elementwise_math.h, as on the CPU.
#include <cuda_runtime.h>

#include "kernels/elementwise/elementwise.h"
#include "kernels/elementwise/float_dispatch.h"
#include "math/compute_type.h"
#include "runtime/cuda_check.h"

namespace lmk::kernels {
namespace {

constexpr int kThreads = 256;

unsigned grid_for(int64_t n) {
  int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65535 * 8 ? (blocks > 0 ? blocks : 1) : 65535 * 8);
}

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
  binary_kernel<T, Op><<<grid_for(n), kThreads, 0, s>>>(p.layout, n, static_cast<const T*>(p.a),
                                                        static_cast<const T*>(p.b), static_cast<T*>(p.out));
}

template <typename T, BinaryOp Op>
void launch_binary_backward(const BinaryBackwardParams& p, int64_t n, cudaStream_t s) {
  binary_backward_kernel<T, Op>
      <<<grid_for(n), kThreads, 0, s>>>(p.layout, n, static_cast<const T*>(p.a), static_cast<const T*>(p.b),
                                        static_cast<const T*>(p.gy), static_cast<T*>(p.ga), static_cast<T*>(p.gb));
}

template <typename T, UnaryOp Op>
void launch_unary(const UnaryParams& p, cudaStream_t s) {
  unary_kernel<T, Op><<<grid_for(p.n), kThreads, 0, s>>>(p.n, static_cast<const T*>(p.x), static_cast<T*>(p.out));
}

template <typename T, UnaryOp Op>
void launch_unary_backward(const UnaryBackwardParams& p, cudaStream_t s) {
  unary_backward_kernel<T, Op><<<grid_for(p.n), kThreads, 0, s>>>(
      p.n, static_cast<const T*>(p.x), static_cast<const T*>(p.y), static_cast<const T*>(p.gy), static_cast<T*>(p.gx));
}

}  // namespace

void binary_cuda(const BinaryParams& p, void* stream) {
  int64_t n = p.layout.numel();
  if (n == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  dispatch_float<false>(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    switch (p.op) {
      case BinaryOp::Add: launch_binary<T, BinaryOp::Add>(p, n, s); break;
      case BinaryOp::Sub: launch_binary<T, BinaryOp::Sub>(p, n, s); break;
      case BinaryOp::Mul: launch_binary<T, BinaryOp::Mul>(p, n, s); break;
      case BinaryOp::Div: launch_binary<T, BinaryOp::Div>(p, n, s); break;
      case BinaryOp::Maximum: launch_binary<T, BinaryOp::Maximum>(p, n, s); break;
    }
  });
  cuda_check_launch("binary");
}

void binary_backward_cuda(const BinaryBackwardParams& p, void* stream) {
  int64_t n = p.layout.numel();
  if (n == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  dispatch_float<false>(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    switch (p.op) {
      case BinaryOp::Add: launch_binary_backward<T, BinaryOp::Add>(p, n, s); break;
      case BinaryOp::Sub: launch_binary_backward<T, BinaryOp::Sub>(p, n, s); break;
      case BinaryOp::Mul: launch_binary_backward<T, BinaryOp::Mul>(p, n, s); break;
      case BinaryOp::Div: launch_binary_backward<T, BinaryOp::Div>(p, n, s); break;
      case BinaryOp::Maximum: launch_binary_backward<T, BinaryOp::Maximum>(p, n, s); break;
    }
  });
  cuda_check_launch("binary backward");
}

void scalar_op_cuda(const ScalarParams& p, void* stream) {
  if (p.n == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  dispatch_float<false>(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    auto x = static_cast<const T*>(p.x);
    auto out = static_cast<T*>(p.out);
    float sv = static_cast<float>(p.s);
    unsigned grid = grid_for(p.n);
    switch (p.op) {
      case ScalarOp::Add: scalar_kernel<T, ScalarOp::Add><<<grid, kThreads, 0, s>>>(p.n, x, sv, out); break;
      case ScalarOp::Mul: scalar_kernel<T, ScalarOp::Mul><<<grid, kThreads, 0, s>>>(p.n, x, sv, out); break;
      case ScalarOp::Pow: scalar_kernel<T, ScalarOp::Pow><<<grid, kThreads, 0, s>>>(p.n, x, sv, out); break;
      case ScalarOp::RSub: scalar_kernel<T, ScalarOp::RSub><<<grid, kThreads, 0, s>>>(p.n, x, sv, out); break;
      case ScalarOp::DivBy: scalar_kernel<T, ScalarOp::DivBy><<<grid, kThreads, 0, s>>>(p.n, x, sv, out); break;
    }
  });
  cuda_check_launch("scalar op");
}

#define LMK_UNARY_CASES(FN, P, S)                                \
  switch (P.op) {                                                \
    case UnaryOp::Neg: FN<T, UnaryOp::Neg>(P, S); break;         \
    case UnaryOp::Exp: FN<T, UnaryOp::Exp>(P, S); break;         \
    case UnaryOp::Log: FN<T, UnaryOp::Log>(P, S); break;         \
    case UnaryOp::Sigmoid: FN<T, UnaryOp::Sigmoid>(P, S); break; \
    case UnaryOp::Relu: FN<T, UnaryOp::Relu>(P, S); break;       \
    case UnaryOp::Square: FN<T, UnaryOp::Square>(P, S); break;   \
    case UnaryOp::Tanh: FN<T, UnaryOp::Tanh>(P, S); break;       \
    case UnaryOp::Silu: FN<T, UnaryOp::Silu>(P, S); break;       \
    case UnaryOp::Sqrt: FN<T, UnaryOp::Sqrt>(P, S); break;       \
    case UnaryOp::Abs: FN<T, UnaryOp::Abs>(P, S); break;         \
  }

void unary_cuda(const UnaryParams& p, void* stream) {
  if (p.n == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  dispatch_float<false>(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    LMK_UNARY_CASES(launch_unary, p, s)
  });
  cuda_check_launch("unary");
}

void unary_backward_cuda(const UnaryBackwardParams& p, void* stream) {
  if (p.n == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  dispatch_float<false>(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    LMK_UNARY_CASES(launch_unary_backward, p, s)
  });
  cuda_check_launch("unary backward");
}

#undef LMK_UNARY_CASES

void axpy_cuda(const AxpyParams& p, void* stream) {
  if (p.n == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  dispatch_float<false>(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    axpy_kernel<T><<<grid_for(p.n), kThreads, 0, s>>>(p.n, static_cast<float>(p.alpha), static_cast<T*>(p.target),
                                                      static_cast<const T*>(p.src));
  });
  cuda_check_launch("addInPlace_");
}

}  // namespace lmk::kernels
