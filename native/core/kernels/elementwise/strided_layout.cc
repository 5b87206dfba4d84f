#include "kernels/elementwise/strided_layout.h"

#include "runtime/error.h"

namespace lmk::kernels {

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (size_t d = shape.size(); d-- > 1;) strides[d - 1] = strides[d] * shape[d];
  return strides;
}

std::vector<int64_t> broadcast_strides(const std::vector<int64_t>& operand, const std::vector<int64_t>& out) {
  std::vector<int64_t> own = contiguous_strides(operand);
  std::vector<int64_t> strides(out.size(), 0);
  size_t lead = out.size() - operand.size();
  for (size_t d = 0; d < operand.size(); ++d) strides[lead + d] = operand[d] == 1 ? 0 : own[d];
  return strides;
}

StridedLayout make_strided_layout(const std::vector<int64_t>& shape, const std::vector<std::vector<int64_t>>& strides,
                                  const char* fn) {
  // Drop size-1 dimensions, then merge d into d+1 when every operand's stride
  // of d equals its stride of d+1 times the size of d+1.
  std::vector<int64_t> dims;
  std::vector<std::vector<int64_t>> st(2);
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    dims.push_back(shape[d]);
    for (size_t k = 0; k < 2; ++k) st[k].push_back(k < strides.size() ? strides[k][d] : 0);
  }
  std::vector<int64_t> merged;
  std::vector<std::vector<int64_t>> mst(2);
  for (size_t d = 0; d < dims.size(); ++d) {
    if (!merged.empty()) {
      bool can = true;
      for (size_t k = 0; k < 2; ++k) can = can && mst[k].back() == st[k][d] * dims[d];
      if (can) {
        merged.back() *= dims[d];
        for (size_t k = 0; k < 2; ++k) mst[k].back() = st[k][d];
        continue;
      }
    }
    merged.push_back(dims[d]);
    for (size_t k = 0; k < 2; ++k) mst[k].push_back(st[k][d]);
  }
  if (merged.size() > static_cast<size_t>(kMaxLayoutDims)) {
    throw_range_error(fn, ": at most ", kMaxLayoutDims, " dimensions are supported after merging, got ", merged.size());
  }
  StridedLayout layout;
  layout.rank = static_cast<int>(merged.size());
  for (int d = 0; d < layout.rank; ++d) {
    layout.shape[d] = merged[d];
    layout.stride[0][d] = mst[0][d];
    layout.stride[1][d] = mst[1][d];
  }
  return layout;
}

}  // namespace lmk::kernels
