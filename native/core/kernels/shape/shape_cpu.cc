// Copies on the CPU: spans of the innermost dimension (strided_copy) or
// memcpy per block (block_copy), spread over the thread pool.
#include <algorithm>
#include <cstring>

#include "kernels/elementwise/span_cpu.h"
#include "kernels/shape/shape.h"

namespace lmk::kernels {
namespace {

template <typename E>
void strided_copy_typed(const StridedCopyParams& p) {
  const E* src = static_cast<const E*>(p.src);
  E* out = static_cast<E*>(p.out);
  for_each_span(p.layout, [&](int64_t o, int64_t n, int64_t os, int64_t, int64_t stride, int64_t) {
    const E* s = src + os;
    E* d = out + o;
    if (stride == 1) {
      std::memcpy(d, s, static_cast<size_t>(n) * sizeof(E));
    } else {
      for (int64_t i = 0; i < n; ++i) d[i] = s[i * stride];
    }
  });
}

}  // namespace

void strided_copy_cpu(const StridedCopyParams& p) {
  switch (p.elem_size) {
    case 2: strided_copy_typed<uint16_t>(p); break;
    case 8: strided_copy_typed<uint64_t>(p); break;
    default: strided_copy_typed<uint32_t>(p); break;
  }
}

void block_copy_cpu(const BlockCopyParams& p) {
  if (p.rows == 0 || p.row_elems == 0) return;
  const char* src = static_cast<const char*>(p.src);
  char* dst = static_cast<char*>(p.dst);
  const size_t es = p.elem_size;
  const int64_t piece = std::min<int64_t>(p.row_elems, kSpanPiece);
  const int64_t per_row = (p.row_elems + piece - 1) / piece;
  parallel_for(p.rows * per_row, std::max<int64_t>(1, kSpanGrain / piece), [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      int64_t r = item / per_row, start = (item % per_row) * piece;
      int64_t n = std::min(piece, p.row_elems - start);
      std::memcpy(dst + (r * p.dst_stride + start) * es, src + (r * p.src_stride + start) * es,
                  static_cast<size_t>(n) * es);
    }
  });
}

}  // namespace lmk::kernels
