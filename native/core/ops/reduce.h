// Sums and their inverse, broadcasting (kernels/reduce/reduce.h for the
// deterministic order): sum over axes, the sum of a broadcast gradient down
// to an input's shape, and a materialised broadcast.
#pragma once
#include <optional>
#include <vector>

#include "runtime/tensor.h"

namespace lmk::ops {

// Σ over `dims` (negatives allowed; empty = every axis, giving a 0-d tensor
// unless keep_dim). keep_dim (default false) keeps the summed axes with size
// 1. Float accumulation (double for float64), fixed order.
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, std::optional<bool> keep_dim = std::nullopt);

// x summed down to `shape`, the reverse of broadcasting `shape` to x.shape:
// leading axes x has and `shape` lacks are summed away, axes where `shape` has
// size 1 are summed with the size kept. RangeError unless `shape` broadcasts
// to x.shape.
Tensor sum_to_shape(const Tensor& x, const Shape& shape);

// x broadcast to `shape` (NumPy rules, x's axes right-aligned), materialised.
Tensor expand_to(const Tensor& x, const Shape& shape);

}  // namespace lmk::ops
