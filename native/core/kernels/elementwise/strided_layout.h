// How up to two operands are read while a contiguous output of `shape` is
// written: per dimension, the element stride of each operand (0 where it is
// broadcast). Built on the host with size-1 dimensions dropped and adjacent
// dimensions merged wherever every operand allows it, so the common cases
// (same shape, a row vector against a matrix) become one or two dimensions.
// Used by the element-wise kernels (broadcasting), expandTo and permute.
#pragma once
#include <cstdint>
#include <vector>

#include "math/host_device.h"

namespace lmk::kernels {

constexpr int kMaxLayoutDims = 16;

struct StridedLayout {
  int rank = 0;  // 0: a single element
  int64_t shape[kMaxLayoutDims] = {};
  int64_t stride[2][kMaxLayoutDims] = {};  // element strides of operands 0 and 1

  int64_t numel() const {
    int64_t n = 1;
    for (int d = 0; d < rank; ++d) n *= shape[d];
    return n;
  }
  int64_t inner() const { return rank == 0 ? 1 : shape[rank - 1]; }
};

// Element offset of operand `which` for the output element at flat index i.
LMK_HOST_DEVICE int64_t layout_offset(const StridedLayout& layout, int which, int64_t i) {
  int64_t offset = 0;
  for (int d = layout.rank - 1; d >= 0; --d) {
    int64_t size = layout.shape[d];
    int64_t coord = i % size;
    i /= size;
    offset += coord * layout.stride[which][d];
  }
  return offset;
}

// `shape` is the output shape; strides[k] the element strides of operand k
// (same length as shape; 0 for broadcast). Throws RangeError naming `fn`
// when more than kMaxLayoutDims dimensions remain after merging.
StridedLayout make_strided_layout(const std::vector<int64_t>& shape, const std::vector<std::vector<int64_t>>& strides,
                                  const char* fn);

// Strides of a contiguous operand of shape `operand` read as the right-aligned
// broadcast to `out` (0 where the operand has size 1 or lacks the dimension).
std::vector<int64_t> broadcast_strides(const std::vector<int64_t>& operand, const std::vector<int64_t>& out);

// Contiguous (row-major) strides of a shape.
std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape);

}  // namespace lmk::kernels
