#include <cstring>

#include "kernels/copy/copy.h"
#include "math/convert.h"
#include "runtime/dispatch.h"
#include "runtime/thread_pool.h"

namespace lmk::kernels {

void convert_cpu(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n) {
  if (src_dtype == dst_dtype) {
    size_t bytes_per = dtype_size(src_dtype);
    parallel_for(n, 1 << 18, [&](int64_t begin, int64_t end) {
      std::memcpy(static_cast<char*>(dst) + begin * bytes_per, static_cast<const char*>(src) + begin * bytes_per,
                  static_cast<size_t>(end - begin) * bytes_per);
    });
    return;
  }
  dispatch_dtype(src_dtype, [&](auto src_tag) {
    using S = typename decltype(src_tag)::type;
    dispatch_dtype(dst_dtype, [&](auto dst_tag) {
      using D = typename decltype(dst_tag)::type;
      const S* in = static_cast<const S*>(src);
      D* out = static_cast<D*>(dst);
      parallel_for(n, 1 << 16, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) store_from_double(out, i, load_as_double(in, i));
      });
    });
  });
}

}  // namespace lmk::kernels
