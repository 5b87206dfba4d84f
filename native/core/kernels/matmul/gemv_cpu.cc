// GEMV-shaped products on the CPU (gemv.h). The blocked GEMM packs the weight
// into panels before multiplying; for one row of x that packing moves more
// memory than the product reads, and decoding is bound by reading the weights.
// Here each weight row is read once, straight from memory (bf16/f16 widened in
// registers), and dotted with the M rows of x. Weight rows are split over the
// thread pool. Each output is one dot product summed in a fixed order: 32
// interleaved partial sums over k, then a fixed pairwise tree, then the tail —
// so results depend on neither the thread count nor the vector width. Compiled
// for AVX-512, AVX2+FMA and baseline x86-64, picked once at load (never
// -march=native), like the GEMM's micro-kernel.
#include <algorithm>
#include <vector>

#include "kernels/elementwise/float_dispatch.h"
#include "kernels/matmul/gemv.h"
#include "math/compute_type.h"
#include "runtime/thread_pool.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

namespace lmk::kernels {
namespace {

constexpr int kLanes = 32;

#define LMK_GEMV_INLINE inline __attribute__((always_inline))

// Rows [n0, n1) of b against the M rows of x (already widened to S).
template <typename T, typename S, int M>
LMK_GEMV_INLINE void gemv_rows(const S* __restrict x, const T* __restrict b, S* __restrict out, int64_t N, int64_t K,
                               int64_t n0, int64_t n1) {
  const int64_t body = K - K % kLanes;
  for (int64_t n = n0; n < n1; ++n) {
    const T* __restrict w = b + n * K;
    S acc[M][kLanes];
    for (int m = 0; m < M; ++m)
      for (int j = 0; j < kLanes; ++j) acc[m][j] = S(0);
    for (int64_t k = 0; k < body; k += kLanes) {
      S wv[kLanes];
#pragma GCC unroll 32
      for (int j = 0; j < kLanes; ++j) wv[j] = load_compute(w, k + j);
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m)
#pragma GCC unroll 32
        for (int j = 0; j < kLanes; ++j) acc[m][j] += x[m * K + k + j] * wv[j];
    }
    for (int m = 0; m < M; ++m) {
      for (int width = kLanes / 2; width > 0; width /= 2)
        for (int j = 0; j < width; ++j) acc[m][j] += acc[m][j + width];
      S sum = acc[m][0];
      for (int64_t k = body; k < K; ++k) sum += x[m * K + k] * load_compute(w, k);
      out[m * N + n] = sum;
    }
  }
}

template <typename T, typename S>
using RowsFn = void (*)(const S*, const T*, S*, int64_t, int64_t, int64_t, int64_t, int);

template <typename T, typename S>
LMK_GEMV_INLINE void rows_any(const S* x, const T* b, S* out, int64_t N, int64_t K, int64_t n0, int64_t n1, int M) {
  switch (M) {
    case 1: gemv_rows<T, S, 1>(x, b, out, N, K, n0, n1); break;
    case 2: gemv_rows<T, S, 2>(x, b, out, N, K, n0, n1); break;
    case 3: gemv_rows<T, S, 3>(x, b, out, N, K, n0, n1); break;
    default: gemv_rows<T, S, 4>(x, b, out, N, K, n0, n1); break;
  }
}

#define LMK_GEMV_VARIANTS(T, S, NAME)                                                                                 \
  void NAME##_baseline(const S* x, const T* b, S* out, int64_t N, int64_t K, int64_t n0, int64_t n1, int M) {         \
    rows_any<T, S>(x, b, out, N, K, n0, n1, M);                                                                       \
  }                                                                                                                   \
  __attribute__((target("avx2,fma"))) void NAME##_avx2(const S* x, const T* b, S* out, int64_t N, int64_t K,          \
                                                       int64_t n0, int64_t n1, int M) {                               \
    rows_any<T, S>(x, b, out, N, K, n0, n1, M);                                                                       \
  }                                                                                                                   \
  __attribute__((target("avx512f,avx512bw,avx2,fma"))) void NAME##_avx512(const S* x, const T* b, S* out, int64_t N,  \
                                                                          int64_t K, int64_t n0, int64_t n1, int M) { \
    rows_any<T, S>(x, b, out, N, K, n0, n1, M);                                                                       \
  }

#if defined(__x86_64__) && defined(__GNUC__)
LMK_GEMV_VARIANTS(float, float, rows_f32)
LMK_GEMV_VARIANTS(bf16, float, rows_bf16)
LMK_GEMV_VARIANTS(f16, float, rows_f16)
LMK_GEMV_VARIANTS(double, double, rows_f64)

int level() {
  static const int detected = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma"))
      return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
    return 0;
  }();
  return detected;
}

template <typename T, typename S>
RowsFn<T, S> pick(RowsFn<T, S> base, RowsFn<T, S> avx2, RowsFn<T, S> avx512) {
  return level() == 2 ? avx512 : level() == 1 ? avx2 : base;
}
RowsFn<float, float> rows_for(float*) { return pick<float, float>(rows_f32_baseline, rows_f32_avx2, rows_f32_avx512); }
RowsFn<bf16, float> rows_for(bf16*) { return pick<bf16, float>(rows_bf16_baseline, rows_bf16_avx2, rows_bf16_avx512); }
RowsFn<f16, float> rows_for(f16*) { return pick<f16, float>(rows_f16_baseline, rows_f16_avx2, rows_f16_avx512); }
RowsFn<double, double> rows_for(double*) {
  return pick<double, double>(rows_f64_baseline, rows_f64_avx2, rows_f64_avx512);
}
#else
template <typename T>
RowsFn<T, compute_t<T> > rows_for(T*) {
  return [](const compute_t<T>* x, const T* b, compute_t<T>* out, int64_t N, int64_t K, int64_t n0, int64_t n1, int M) {
    rows_any<T, compute_t<T> >(x, b, out, N, K, n0, n1, M);
  };
}
#endif

template <typename T>
void gemv_typed(const MatmulParams& p) {
  using S = compute_t<T>;
  const T* a = static_cast<const T*>(p.a);
  const T* b = static_cast<const T*>(p.b);
  T* out = static_cast<T*>(p.out);
  const int64_t M = p.M, N = p.N, K = p.K;
  std::vector<S> x(static_cast<size_t>(M * K));
  for (int64_t e = 0; e < M * K; ++e) x[e] = load_compute(a, e);
  std::vector<S> result;
  S* dst = nullptr;
  if constexpr (std::is_same_v<T, S>) {
    dst = out;
  } else {
    result.resize(static_cast<size_t>(M * N));
    dst = result.data();
  }
  const RowsFn<T, S> rows = rows_for(static_cast<T*>(nullptr));
  // About 64 KiB of weights per chunk: enough to amortise a task, small enough to balance.
  const int64_t grain = std::max<int64_t>(1, (64 << 10) / std::max<int64_t>(K * static_cast<int64_t>(sizeof(T)), 1));
  parallel_for(N, grain, [&](int64_t n0, int64_t n1) { rows(x.data(), b, dst, N, K, n0, n1, static_cast<int>(M)); });
  if constexpr (!std::is_same_v<T, S>) {
    for (int64_t e = 0; e < M * N; ++e) store_compute(out, e, result[e]);
  }
}

}  // namespace

bool gemv_cpu(const MatmulParams& p) {
  if (p.trans_a || !p.trans_b || p.M < 1 || p.N == 0 || p.K == 0 || p.batch * p.M > kGemvMaxRows) return false;
  // Several output matrices qualify when they share b and their a's follow each other
  // (x [B,1,K] against a 2-D weight): then they are one a of batch·M rows.
  for (int64_t i = 0; i < p.batch; ++i) {
    if (layout_offset(p.batch_layout, 1, i) != 0 || layout_offset(p.batch_layout, 0, i) != i * p.M * p.K) return false;
  }
  MatmulParams rows = p;
  rows.M = p.batch * p.M;
  rows.batch = 1;
  dispatch_float(p.dtype, [&](auto tag) { gemv_typed<typename decltype(tag)::type>(rows); });
  return true;
}

}  // namespace lmk::kernels
