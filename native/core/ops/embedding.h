// Embedding lookup and its deterministic gradient (kernels/embedding/).
// ids are int32 of any shape; an id outside [0, V) is found by the kernel and
// reported at the next sync as a RangeError naming the op, `ids` and the first
// bad flat index; the op's output is poisoned (reading it rejects).
#pragma once
#include "runtime/tensor.h"

namespace lmk::ops {

// weight [V, D], ids [...] → [..., D].
Tensor embedding(const Tensor& weight, const Tensor& ids);

// gOut [..., D] (... = ids.shape) → gWeight [V, D] with V = num_embeddings:
// row v sums, in increasing flat index, the gOut rows whose id is v.
Tensor embedding_backward(const Tensor& gout, const Tensor& ids, int64_t num_embeddings);

}  // namespace lmk::ops
