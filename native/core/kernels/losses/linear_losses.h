// Losses from hidden states (docs/kernels.md "losses from hidden states"): the
// language-model head logits = hidden · weightᵀ (+ bias) fused with
// cross-entropy / goldfish or ORPO, chunk by chunk, so no more than one chunk
// of logits (and one of their gradient) ever exists.
//
// Per chunk of `chunk_rows` rows, composed of the existing kernels (the same
// host code drives both devices, linear_losses_driver.h):
//   logits = hidden_chunk · weightᵀ (+ 1·biasᵀ)       GEMM into the chunk buffer
//   the row kernel (ce_rows.h) on the chunk: per-row lse / −log p, and the
//     gradient of the logits into a second chunk buffer (coefficients known
//     up front: the supervised-token count comes from the pre-pass)
//   gradHidden_chunk = gradLogits · weight             GEMM
//   gradWeight += gradLogitsᵀ · hidden_chunk            GEMM with beta = 1
//   gradBias += gradLogitsᵀ · 1                         GEMM with beta = 1
// Chunks run in row order, so every sum has a fixed order (deterministic, no
// float atomics). ORPO needs every row's log-probability before its gradient
// coefficients are known: a stats pass (forward GEMM + row stats per chunk),
// the per-pair step, then a gradient pass that recomputes each chunk's logits.
//
// Extra memory: the loss's own O(N) per-row values, 2·chunk_rows·V logits
// (one without the gradient), chunk_rows ones for the bias, and for
// bfloat16/float16 with more than one chunk a float32 accumulator for the
// weight's (and bias's) gradient, V·d·4 bytes, so that it is rounded once.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/losses/losses.h"
#include "kernels/matmul/matmul.h"

namespace lmk::kernels {

// The head shared by both losses.
struct LinearHead {
  DType dtype = DType::Float32;  // of hidden, weight, bias and every gradient
  int64_t d = 0, V = 0;
  const void* weight = nullptr;  // [V, d]
  const void* bias = nullptr;    // [V] or nullptr
  int64_t chunk_rows = 1;        // >= 1
  GemmKernel gemm = GemmKernel::Library;
  void* grad_weight = nullptr;  // [V, d] or nullptr (not wanted)
  void* grad_bias = nullptr;    // [V] or nullptr
};

// Cross-entropy / goldfish: `loss` describes the rows as for
// cross_entropy_cpu (rows, labels, weights, goldfish, reduction, outputs);
// its logits, grad and workspace are set by the driver. loss.grad is only
// read as a flag: non-null when the gradients are wanted.
struct LinearCrossEntropyParams {
  CrossEntropyParams loss;
  LinearHead head;
  const void* hidden = nullptr;  // [rows, d]
  void* grad_hidden = nullptr;   // [rows, d] or nullptr
  void* workspace = nullptr;     // linear_cross_entropy_workspace_bytes()
};

size_t linear_cross_entropy_workspace_bytes(const LinearCrossEntropyParams& params);
void linear_cross_entropy_cpu(const LinearCrossEntropyParams& params);
void linear_cross_entropy_cuda(const LinearCrossEntropyParams& params, void* stream);

// ORPO: `loss` as for orpo_cpu without its logits; loss.grad_chosen is only
// read as a flag (non-null: gradients wanted).
struct LinearOrpoParams {
  OrpoParams loss;
  LinearHead head;
  const void* chosen_hidden = nullptr;    // [B·T_chosen, d]
  const void* rejected_hidden = nullptr;  // [B·T_rejected, d]
  void* grad_chosen_hidden = nullptr;     // or nullptr
  void* grad_rejected_hidden = nullptr;
  void* workspace = nullptr;  // linear_orpo_workspace_bytes()
};

size_t linear_orpo_workspace_bytes(const LinearOrpoParams& params);
void linear_orpo_cpu(const LinearOrpoParams& params);
void linear_orpo_cuda(const LinearOrpoParams& params, void* stream);

}  // namespace lmk::kernels
