// CPU traversal of a StridedLayout: the output's flat range is cut into spans
// of the innermost dimension (long rows into pieces), spread over the thread
// pool; each span knows where both operands start and their innermost strides.
// Every output element is written by exactly one span, so results do not
// depend on the thread count.
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/elementwise/strided_layout.h"
#include "runtime/thread_pool.h"

namespace lmk::kernels {

constexpr int64_t kSpanPiece = 16384;  // elements of one span at most
constexpr int64_t kSpanGrain = 32768;  // elements per parallel chunk at least

// span(out_offset, length, offset0, offset1, inner_stride0, inner_stride1)
template <typename Span>
void for_each_span(const StridedLayout& layout, const Span& span) {
  const int64_t n = layout.numel();
  if (n == 0) return;
  const int rank = layout.rank;
  const int64_t inner = layout.inner();
  const int64_t rows = n / inner;
  const int64_t piece = std::min(inner, kSpanPiece);
  const int64_t per_row = (inner + piece - 1) / piece;
  const int64_t inner0 = rank ? layout.stride[0][rank - 1] : 0;
  const int64_t inner1 = rank ? layout.stride[1][rank - 1] : 0;
  parallel_for(rows * per_row, std::max<int64_t>(1, kSpanGrain / piece), [&](int64_t begin, int64_t end) {
    int64_t row = begin / per_row, part = begin % per_row;
    int64_t coord[kMaxLayoutDims] = {};
    int64_t off0 = 0, off1 = 0;
    int64_t rest = row;
    for (int d = rank - 2; d >= 0; --d) {
      coord[d] = rest % layout.shape[d];
      rest /= layout.shape[d];
      off0 += coord[d] * layout.stride[0][d];
      off1 += coord[d] * layout.stride[1][d];
    }
    for (int64_t item = begin; item < end; ++item) {
      int64_t start = part * piece;
      int64_t length = std::min(piece, inner - start);
      span(row * inner + start, length, off0 + start * inner0, off1 + start * inner1, inner0, inner1);
      if (++part == per_row) {
        part = 0;
        ++row;
        for (int d = rank - 2; d >= 0; --d) {
          ++coord[d];
          off0 += layout.stride[0][d];
          off1 += layout.stride[1][d];
          if (coord[d] < layout.shape[d]) break;
          off0 -= coord[d] * layout.stride[0][d];
          off1 -= coord[d] * layout.stride[1][d];
          coord[d] = 0;
        }
      }
    }
  });
}

// fn(begin, end) over [0, n) in parallel chunks of at least kSpanGrain.
template <typename Fn>
void for_each_range(int64_t n, const Fn& fn) {
  parallel_for(n, kSpanGrain, [&](int64_t begin, int64_t end) { fn(begin, end); });
}

}  // namespace lmk::kernels
