// AdamW and gradient clipping on the CPU (see optim.h).
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "kernels/elementwise/float_dispatch.h"
#include "kernels/lane_sum_cpu.h"
#include "kernels/optim/optim.h"
#include "math/adamw_math.h"
#include "math/compute_type.h"
#include "runtime/thread_pool.h"

namespace lmk::kernels {
namespace {

constexpr int64_t kGrain = 16384;

template <typename T, typename M>
void adamw_typed(const AdamwParams& p) {
  using C = compute_t<T>;
  const AdamwScalars<C> s = adamw_scalars<C>(p);
  T* param = static_cast<T*>(p.param);
  const T* grad = static_cast<const T*>(p.grad);
  M* m = static_cast<M*>(p.exp_avg);
  M* v = static_cast<M*>(p.exp_avg_sq);
  parallel_for(p.n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      C pi = load_compute(param, i), mi = load_compute(m, i), vi = load_compute(v, i);
      adamw_update(s, static_cast<C>(load_compute(grad, i)), &pi, &mi, &vi);
      store_compute(param, i, pi);
      store_compute(m, i, mi);
      store_compute(v, i, vi);
    }
  });
}

// Σ g² of one tensor: chunks of kGrain summed in 16 float lanes (double for
// float64), chunk sums added in order in double.
template <typename T>
double sum_of_squares(const T* g, int64_t n) {
  using C = compute_t<T>;
  const int64_t chunks = (n + kGrain - 1) / kGrain;
  std::vector<double> partial(static_cast<size_t>(chunks));
  parallel_for(chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const T* x = g + c * kGrain;
      int64_t len = std::min(kGrain, n - c * kGrain);
      partial[c] = static_cast<double>(lane_sum<C>(len, [&](int64_t i) {
        C v = load_compute(x, i);
        return v * v;
      }));
    }
  });
  double total = 0;
  for (double x : partial) total += x;
  return total;
}

template <typename T>
void grad_clip_typed(const GradClipParams& p) {
  using C = compute_t<T>;
  double total = 0;
  for (size_t t = 0; t < p.grads.size(); ++t) total += sum_of_squares(static_cast<const T*>(p.grads[t]), p.sizes[t]);
  // The norm as stored (float32, or double), then the coefficient from it.
  C norm = static_cast<C>(std::sqrt(total));
  *static_cast<C*>(p.norm) = norm;
  C coef = static_cast<C>(p.max_norm) / (norm + static_cast<C>(1e-6));
  if (coef >= C(1)) return;  // min(1, coef) = 1: g·1 = g (a NaN coefficient scales, as in PyTorch)
  for (size_t t = 0; t < p.grads.size(); ++t) {
    T* g = static_cast<T*>(p.grads[t]);
    parallel_for(p.sizes[t], kGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) store_compute(g, i, load_compute(g, i) * coef);
    });
  }
}

}  // namespace

void adamw_cpu(const AdamwParams& p) {
  dispatch_float(p.param_dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (p.moment_dtype == p.param_dtype) {
      adamw_typed<T, T>(p);
    } else if constexpr (!std::is_same_v<T, double>) {
      adamw_typed<T, float>(p);  // bf16/f16 params with float32 moments
    }
  });
}

void grad_clip_cpu(const GradClipParams& p) {
  dispatch_float(p.dtype, [&](auto tag) { grad_clip_typed<typename decltype(tag)::type>(p); });
}

}  // namespace lmk::kernels
