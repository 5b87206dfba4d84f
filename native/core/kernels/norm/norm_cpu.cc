// Norms on the CPU: rows in parallel; each row's sums in 16 interleaved lanes
// folded by a fixed tree (vectorised, deterministic). The backward also sums
// gWeight/gBias per chunk of rows (chunk size from the shape only) and adds
// the chunk sums in order afterwards.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/elementwise/float_dispatch.h"
#include "kernels/lane_sum_cpu.h"
#include "kernels/norm/norm.h"
#include "math/compute_type.h"
#include "runtime/thread_pool.h"

namespace lmk::kernels {
namespace {

template <typename T>
void forward_typed(const NormParams& p) {
  using C = compute_t<T>;
  const int64_t Cn = p.C;
  const T* w = static_cast<const T*>(p.weight);
  const T* b = static_cast<const T*>(p.bias);
  parallel_for(p.rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(Cn, 1)), [&](int64_t begin, int64_t end) {
    std::vector<C> xs(static_cast<size_t>(Cn));
    for (int64_t r = begin; r < end; ++r) {
      const T* x = static_cast<const T*>(p.x) + r * Cn;
      T* y = static_cast<T*>(p.y) + r * Cn;
      C* xr = xs.data();
      for (int64_t i = 0; i < Cn; ++i) xr[i] = load_compute(x, i);
      C mean = 0, rstd;
      if (p.rms) {
        C ms = lane_sum<C>(Cn, [&](int64_t i) { return xr[i] * xr[i]; }) / C(Cn);
        rstd = C(1) / std::sqrt(ms + C(p.eps));
      } else {
        mean = lane_sum<C>(Cn, [&](int64_t i) { return xr[i]; }) / C(Cn);
        C var = lane_sum<C>(Cn, [&](int64_t i) { return (xr[i] - mean) * (xr[i] - mean); }) / C(Cn);
        rstd = C(1) / std::sqrt(var + C(p.eps));
        static_cast<C*>(p.mean)[r] = mean;
      }
      static_cast<C*>(p.rstd)[r] = rstd;
      for (int64_t i = 0; i < Cn; ++i) {
        C v = (xr[i] - mean) * rstd;
        if (w) v = v * load_compute(w, i);
        if (b) v = v + load_compute(b, i);
        store_compute(y, i, v);
      }
    }
  });
}

template <typename T>
void backward_typed(const NormParams& p) {
  using C = compute_t<T>;
  const int64_t Cn = p.C, rows = p.rows;
  const T* w = static_cast<const T*>(p.weight);
  const bool want_w = p.gweight != nullptr, want_b = p.gbias != nullptr;
  // Rows per chunk of the gWeight/gBias sums: from the shape only.
  const int64_t chunk = std::max<int64_t>(32, (rows + 255) / 256);
  const int64_t chunks = rows == 0 ? 0 : (rows + chunk - 1) / chunk;
  std::vector<C> part_w(want_w ? static_cast<size_t>(chunks * Cn) : 0);
  std::vector<C> part_b(want_b ? static_cast<size_t>(chunks * Cn) : 0);
  parallel_for(chunks, 1, [&](int64_t cbegin, int64_t cend) {
    std::vector<C> xhat(static_cast<size_t>(Cn)), g(static_cast<size_t>(Cn));
    for (int64_t c = cbegin; c < cend; ++c) {
      C* pw = want_w ? part_w.data() + c * Cn : nullptr;
      C* pb = want_b ? part_b.data() + c * Cn : nullptr;
      for (int64_t i = 0; i < Cn; ++i) {
        if (pw) pw[i] = C(0);
        if (pb) pb[i] = C(0);
      }
      for (int64_t r = c * chunk; r < std::min(rows, (c + 1) * chunk); ++r) {
        const T* x = static_cast<const T*>(p.x) + r * Cn;
        const T* gy = static_cast<const T*>(p.gy) + r * Cn;
        T* gx = static_cast<T*>(p.gx) + r * Cn;
        const C mean = p.rms ? C(0) : static_cast<const C*>(p.mean)[r];
        const C rstd = static_cast<const C*>(p.rstd)[r];
        C* xh = xhat.data();
        C* gr = g.data();
        for (int64_t i = 0; i < Cn; ++i) {
          C gyi = load_compute(gy, i);
          xh[i] = (load_compute(x, i) - mean) * rstd;
          gr[i] = w ? gyi * load_compute(w, i) : gyi;
          if (pw) pw[i] += gyi * xh[i];
          if (pb) pb[i] += gyi;
        }
        C mean_g = p.rms ? C(0) : lane_sum<C>(Cn, [&](int64_t i) { return gr[i]; }) / C(Cn);
        C mean_gx = lane_sum<C>(Cn, [&](int64_t i) { return gr[i] * xh[i]; }) / C(Cn);
        for (int64_t i = 0; i < Cn; ++i) store_compute(gx, i, rstd * (gr[i] - mean_g - xh[i] * mean_gx));
      }
    }
  });
  if (!want_w && !want_b) return;
  T* gw = static_cast<T*>(p.gweight);
  T* gb = static_cast<T*>(p.gbias);
  parallel_for(Cn, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      if (gw) {
        C total = 0;
        for (int64_t c = 0; c < chunks; ++c) total += part_w[c * Cn + i];
        store_compute(gw, i, total);
      }
      if (gb) {
        C total = 0;
        for (int64_t c = 0; c < chunks; ++c) total += part_b[c * Cn + i];
        store_compute(gb, i, total);
      }
    }
  });
}

}  // namespace

void norm_forward_cpu(const NormParams& p) {
  dispatch_float(p.dtype, [&](auto tag) { forward_typed<typename decltype(tag)::type>(p); });
}

void norm_backward_cpu(const NormParams& p) {
  dispatch_float(p.dtype, [&](auto tag) { backward_typed<typename decltype(tag)::type>(p); });
}

}  // namespace lmk::kernels
