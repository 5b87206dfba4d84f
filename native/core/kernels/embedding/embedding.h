// Embedding lookup (gather) and its gradient (deterministic scatter-add).
//   forward:  out[n, :] = weight[ids[n], :]
//   backward: gWeight[v, :] = Σ_{n : ids[n] = v} gOut[n, :], summed in
//             increasing n (float accumulation, double for float64)
// An id outside [0, V) is recorded (atomic min of its flat index) into
// `first_bad_index`, a value-check word (runtime/stream.h); its row reads as
// zeros in the forward and is skipped in the backward.
//
// CPU backward: a stable counting sort of n by id (CSR, O(n + V)), then the
// rows of gWeight in parallel, each summing its gOut rows in index order.
// CUDA backward: one thread per column d walks n in order and adds into its
// column of a float accumulator (gWeight itself for float32, else the
// workspace), so no two threads ever touch the same element.
#pragma once
#include <cstddef>
#include <cstdint>

#include "runtime/dtype.h"

namespace lmk::kernels {

struct EmbeddingParams {
  DType dtype = DType::Float32;  // weight, out / gOut, gWeight
  int64_t n = 0;                 // number of ids
  int64_t V = 0, D = 0;
  const int32_t* ids = nullptr;
  const void* weight = nullptr;  // forward: [V, D]
  void* out = nullptr;           // forward: [n, D]
  const void* gout = nullptr;    // backward: [n, D]
  void* gweight = nullptr;       // backward: [V, D]
  void* workspace = nullptr;     // CUDA backward: embedding_backward_workspace_bytes_cuda(*this)
  int64_t* first_bad_index = nullptr;
};

void embedding_forward_cpu(const EmbeddingParams& p);
void embedding_backward_cpu(const EmbeddingParams& p);

size_t embedding_backward_workspace_bytes_cuda(const EmbeddingParams& p);
void embedding_forward_cuda(const EmbeddingParams& p, void* stream);
void embedding_backward_cuda(const EmbeddingParams& p, void* stream);

}  // namespace lmk::kernels
