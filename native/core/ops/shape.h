// Shape ops that copy (no views): permute, concat, slice and its backward,
// RWKV's token shift and its backward. They move elements without arithmetic,
// so they take any dtype (int32 included); all tensors of a call share one
// dtype and device. Outputs are new contiguous tensors.
#pragma once
#include <vector>

#include "runtime/tensor.h"

namespace lmk::ops {

// out.shape[i] = x.shape[dims[i]]; dims a permutation (negatives allowed).
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims, const char* fn = "ops.permute");

// xs joined along `dim`; every other size must agree. At least one tensor.
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);

// Elements [start, end) of axis `dim` (negative start/end count from the end,
// as in Python); RangeError unless 0 <= start <= end <= size after that.
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end);

// Zeros of `input_shape` with g placed at [start, end) of axis `dim`: the
// gradient of slice. g must have the slice's shape.
Tensor slice_backward(const Tensor& g, const Shape& input_shape, int64_t dim, int64_t start, int64_t end);

// x [B,T,C]: out[:, t] = x[:, t-1], out[:, 0] = 0 (RWKV's time shift).
Tensor token_shift(const Tensor& x);

// g [B,T,C]: gx[:, t] = g[:, t+1], gx[:, T-1] = 0 (the gradient of token_shift).
Tensor token_shift_backward(const Tensor& g);

}  // namespace lmk::ops
