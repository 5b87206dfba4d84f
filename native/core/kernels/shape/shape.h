// Data-movement kernels behind the shape ops (ops/shape.cc, ops/reduce.cc):
// they copy elements without arithmetic, so they work on raw element sizes
// (2, 4 or 8 bytes) whatever the dtype.
//
//   strided_copy: out (contiguous, layout.shape) = src read through operand 0
//                 of the layout: permute, expandTo (broadcast strides of 0).
//   block_copy:   `rows` blocks of `row_elems` contiguous elements, block r
//                 from src + r*src_stride to dst + r*dst_stride: concat, slice,
//                 sliceBackward, tokenShift and its backward.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/elementwise/strided_layout.h"

namespace lmk::kernels {

struct StridedCopyParams {
  size_t elem_size = 4;
  StridedLayout layout;
  const void* src = nullptr;
  void* out = nullptr;
};

struct BlockCopyParams {
  size_t elem_size = 4;
  int64_t rows = 0;
  int64_t row_elems = 0;
  int64_t src_stride = 0;  // elements between block starts
  int64_t dst_stride = 0;
  const void* src = nullptr;
  void* dst = nullptr;
};

void strided_copy_cpu(const StridedCopyParams& p);
void block_copy_cpu(const BlockCopyParams& p);

void strided_copy_cuda(const StridedCopyParams& p, void* stream);
void block_copy_cuda(const BlockCopyParams& p, void* stream);

}  // namespace lmk::kernels
