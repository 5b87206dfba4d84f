// Embedding on the CPU (see embedding.h).
#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "kernels/checks/index_check.h"
#include "kernels/elementwise/float_dispatch.h"
#include "kernels/embedding/embedding.h"
#include "math/compute_type.h"
#include "runtime/thread_pool.h"

namespace lmk::kernels {
namespace {

template <typename T>
void forward_typed(const EmbeddingParams& p) {
  const T* weight = static_cast<const T*>(p.weight);
  T* out = static_cast<T*>(p.out);
  std::atomic<int64_t> first{*p.first_bad_index};
  const size_t row_bytes = static_cast<size_t>(p.D) * sizeof(T);
  parallel_for(p.n, std::max<int64_t>(1, 8192 / std::max<int64_t>(p.D, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      int32_t id = p.ids[i];
      if (id < 0 || id >= p.V) {
        record_first_bad_index(first, i);
        std::memset(out + i * p.D, 0, row_bytes);
      } else {
        std::memcpy(out + i * p.D, weight + static_cast<int64_t>(id) * p.D, row_bytes);
      }
    }
  });
  *p.first_bad_index = first.load();
}

template <typename T>
void backward_typed(const EmbeddingParams& p) {
  using C = compute_t<T>;
  const T* gout = static_cast<const T*>(p.gout);
  T* gweight = static_cast<T*>(p.gweight);
  // Stable counting sort of the valid indices by id.
  std::vector<int64_t> start(static_cast<size_t>(p.V + 1), 0);
  int64_t first_bad = *p.first_bad_index;
  for (int64_t i = 0; i < p.n; ++i) {
    int32_t id = p.ids[i];
    if (id < 0 || id >= p.V) {
      if (i < first_bad) first_bad = i;
      continue;
    }
    ++start[static_cast<size_t>(id) + 1];
  }
  *p.first_bad_index = first_bad;
  for (int64_t v = 0; v < p.V; ++v) start[v + 1] += start[v];
  std::vector<int64_t> order(static_cast<size_t>(start[p.V]));
  {
    std::vector<int64_t> next(start.begin(), start.end() - 1);
    for (int64_t i = 0; i < p.n; ++i) {
      int32_t id = p.ids[i];
      if (id >= 0 && id < p.V) order[next[id]++] = i;
    }
  }
  parallel_for(p.V, std::max<int64_t>(1, 4096 / std::max<int64_t>(p.D, 1)), [&](int64_t begin, int64_t end) {
    std::vector<C> acc(static_cast<size_t>(p.D));
    for (int64_t v = begin; v < end; ++v) {
      C* a = acc.data();
      for (int64_t d = 0; d < p.D; ++d) a[d] = C(0);
      for (int64_t k = start[v]; k < start[v + 1]; ++k) {
        const T* row = gout + order[k] * p.D;
        for (int64_t d = 0; d < p.D; ++d) a[d] += load_compute(row, d);
      }
      T* dst = gweight + v * p.D;
      for (int64_t d = 0; d < p.D; ++d) store_compute(dst, d, a[d]);
    }
  });
}

}  // namespace

void embedding_forward_cpu(const EmbeddingParams& p) {
  dispatch_float(p.dtype, [&](auto tag) { forward_typed<typename decltype(tag)::type>(p); });
}

void embedding_backward_cpu(const EmbeddingParams& p) {
  dispatch_float(p.dtype, [&](auto tag) { backward_typed<typename decltype(tag)::type>(p); });
}

}  // namespace lmk::kernels
