#include "kernels/creation/creation.h"
#include "kernels/creation/random_value.h"
#include "math/convert.h"
#include "runtime/dispatch.h"
#include "runtime/thread_pool.h"

namespace lmk::kernels {

void fill_cpu(void* data, DType dtype, int64_t n, double value) {
  dispatch_dtype(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T element;
    store_from_double(&element, 0, value);
    T* out = static_cast<T*>(data);
    parallel_for(n, 1 << 16, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) out[i] = element;
    });
  });
}

void arange_cpu(void* data, DType dtype, int64_t n) {
  dispatch_dtype(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* out = static_cast<T*>(data);
    parallel_for(n, 1 << 16, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) store_from_double(out, i, static_cast<double>(i));
    });
  });
}

void random_cpu(void* data, DType dtype, int64_t n, const RandomParams& params) {
  dispatch_dtype(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* out = static_cast<T*>(data);
    parallel_for(n, 1 << 14, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) store_from_double(out, i, random_value(params, i));
    });
  });
}

}  // namespace lmk::kernels
