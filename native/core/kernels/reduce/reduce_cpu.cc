// Sum over the middle axis on the CPU (see reduce.h for the fixed order).
// Work items are (o, chunk of r, block of i); each writes its own partial
// sums, which a second parallel pass adds in chunk order.
#include <algorithm>
#include <vector>

#include "kernels/elementwise/float_dispatch.h"
#include "kernels/lane_sum_cpu.h"
#include "kernels/reduce/reduce.h"
#include "math/compute_type.h"
#include "runtime/thread_pool.h"

namespace lmk::kernels {
namespace {

constexpr int64_t kRowChunk = 8192;     // r per chunk when I == 1
constexpr int64_t kChunkElems = 65536;  // about r * I per chunk when I > 1 (64 to 1024 rows)
constexpr int64_t kIBlock = 4096;

// Σ x[0 .. n) in lanes (kernels/lane_sum_cpu.h).
template <typename T>
compute_t<T> sum_contiguous(const T* __restrict x, int64_t n) {
  return lane_sum<compute_t<T>>(n, [&](int64_t r) { return load_compute(x, r); });
}

template <typename T>
void sum_typed(const SumParams& p) {
  using C = compute_t<T>;
  const T* x = static_cast<const T*>(p.x);
  T* out = static_cast<T*>(p.out);
  const int64_t O = p.O, R = p.R, I = p.I;
  if (O * I == 0) return;
  const int64_t chunk = I == 1 ? kRowChunk : std::clamp<int64_t>(kChunkElems / I, 64, 1024);
  const int64_t chunks = R == 0 ? 1 : (R + chunk - 1) / chunk;
  const int64_t iblock = std::min(I, kIBlock);
  const int64_t iblocks = (I + iblock - 1) / iblock;
  // One chunk: write sums straight to out; else keep partials [O, chunks, I].
  std::vector<C> partial(chunks > 1 ? static_cast<size_t>(O * chunks * I) : 0);
  parallel_for(O * chunks * iblocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<C> acc(static_cast<size_t>(iblock));
    for (int64_t item = begin; item < end; ++item) {
      int64_t ib = item % iblocks, c = (item / iblocks) % chunks, o = item / (iblocks * chunks);
      int64_t r0 = c * chunk, r1 = std::min(R, r0 + chunk);
      int64_t i0 = ib * iblock, ni = std::min(iblock, I - i0);
      C* a = acc.data();
      if (I == 1) {
        a[0] = sum_contiguous(x + o * R + r0, r1 - r0);
      } else {
        for (int64_t i = 0; i < ni; ++i) a[i] = C(0);
        for (int64_t r = r0; r < r1; ++r) {
          const T* row = x + (o * R + r) * I + i0;
          for (int64_t i = 0; i < ni; ++i) a[i] += load_compute(row, i);
        }
      }
      if (chunks == 1) {
        for (int64_t i = 0; i < ni; ++i) store_compute(out, o * I + i0 + i, a[i]);
      } else {
        C* dst = partial.data() + (o * chunks + c) * I + i0;
        for (int64_t i = 0; i < ni; ++i) dst[i] = a[i];
      }
    }
  });
  if (chunks == 1) return;
  parallel_for(O * I, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      int64_t o = k / I, i = k % I;
      const C* src = partial.data() + o * chunks * I + i;
      double total = 0;
      for (int64_t c = 0; c < chunks; ++c) total += static_cast<double>(src[c * I]);
      store_compute(out, k, static_cast<C>(total));
    }
  });
}

}  // namespace

void sum_cpu(const SumParams& p) {
  dispatch_float(p.dtype, [&](auto tag) { sum_typed<typename decltype(tag)::type>(p); });
}

}  // namespace lmk::kernels
