// RoPE on the CPU: work items are (p, t); each computes the D/2 cosines and
// sines of its position once (in double) and rotates the Mid rows that share it.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/elementwise/float_dispatch.h"
#include "kernels/rope/rope.h"
#include "math/compute_type.h"
#include "math/rope_angle.h"
#include "runtime/thread_pool.h"

namespace lmk::kernels {
namespace {

template <typename T>
void rope_typed(const RopeParams& p) {
  using C = compute_t<T>;
  const int64_t half = p.D / 2;
  const T* x = static_cast<const T*>(p.x);
  T* out = static_cast<T*>(p.out);
  parallel_for(p.P * p.T, std::max<int64_t>(1, 4096 / std::max<int64_t>(p.Mid * p.D, 1)),
               [&](int64_t begin, int64_t end) {
                 std::vector<C> cos_t(static_cast<size_t>(half)), sin_t(static_cast<size_t>(half));
                 for (int64_t item = begin; item < end; ++item) {
                   int64_t pp = item / p.T, t = item % p.T;
                   int64_t position = p.positions[pp * p.T + t];
                   for (int64_t i = 0; i < half; ++i) {
                     double angle = rope_angle(position, i, p.D, p.base);
                     cos_t[i] = static_cast<C>(std::cos(angle));
                     sin_t[i] = static_cast<C>(p.inverse ? -std::sin(angle) : std::sin(angle));
                   }
                   for (int64_t m = 0; m < p.Mid; ++m) {
                     int64_t row = ((pp * p.Mid + m) * p.T + t) * p.D;
                     const T* xr = x + row;
                     T* yr = out + row;
                     for (int64_t i = 0; i < half; ++i) {
                       C y0, y1;
                       rope_rotate(load_compute(xr, 2 * i), load_compute(xr, 2 * i + 1), cos_t[i], sin_t[i], &y0, &y1);
                       store_compute(yr, 2 * i, y0);
                       store_compute(yr, 2 * i + 1, y1);
                     }
                   }
                 }
               });
}

}  // namespace

void rope_cpu(const RopeParams& p) {
  dispatch_float(p.dtype, [&](auto tag) { rope_typed<typename decltype(tag)::type>(p); });
}

}  // namespace lmk::kernels
