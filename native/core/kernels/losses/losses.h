// Loss kernels (docs/kernels.md#losses): raw pointers and sizes; ops/losses.cc
// validates and schedules them. Every loss is a weighted sum of per-token
// cross-entropies computed by one row kernel (kernels/losses/ce_rows.h).
//
// Types: `dtype` is the storage type of the logits and their gradients
// (float32, bfloat16, float16, or float64 on the CPU). Float results (loss
// scalars, lse, per-token losses, log-probabilities, metrics) are in the
// output type: double for float64 logits, float otherwise. Counts are int32.
// Tokens are laid out [sequences, T] (flat index = sequence·T + position).
//
// Passes and bytes (N rows of V logits, s = bytes per logit):
//   cross_entropy / goldfish_loss: a counting pre-pass over the labels (and
//     goldfish hash tokens), O(N); one fused row pass (logits read once,
//     N·V·s; gradient written once, N·V·s); a fixed-order reduction, O(N).
//   orpo: the pre-pass; a stats pass over both logits (read once); a
//     per-sequence coefficient kernel, O(N + B); a gradient pass (logits
//     read again, gradient written once). The second read is inherent: the
//     coefficients depend on every token's log-probability.
// Extra memory: O(N) (per-row values) plus O(B); never O(N·V).
//
// Values only the data can make invalid are reported through value-check
// words (runtime/stream.h): the kernels atomically min the first offending
// flat index into them.
#pragma once
#include <cstddef>
#include <cstdint>

#include "math/goldfish_hash.h"
#include "runtime/dtype.h"

namespace lmk::kernels {

enum LossReductionKind : int32_t { kLossMean = 0, kLossSum = 1, kLossNone = 2 };

// Cross-entropy, and goldfish loss when goldfish.strategy != kGoldfishOff.
struct CrossEntropyParams {
  DType dtype = DType::Float32;
  int64_t rows = 0, V = 0, T = 1;   // T: positions per sequence (goldfish)
  const void* logits = nullptr;     // [rows, V]
  const int32_t* labels = nullptr;  // [rows]
  int64_t ignore_index = -100;
  const void* weights = nullptr;  // [rows] or nullptr (cross-entropy only)
  DType weights_dtype = DType::Float32;
  int32_t reduction = kLossMean;  // goldfish: always the mean over kept tokens
  GoldfishRule goldfish;
  double grad_scale = 1;

  void* loss = nullptr;  // 0-d; [rows] for kLossNone
  void* lse = nullptr;   // [rows] or nullptr
  void* grad = nullptr;  // [rows, V] or nullptr
  // goldfish only (nullptr otherwise)
  void* loss_all = nullptr;      // 0-d: mean over supervised tokens
  void* loss_dropped = nullptr;  // 0-d: mean over dropped tokens
  int32_t* supervised_count = nullptr;
  int32_t* kept_count = nullptr;

  void* workspace = nullptr;  // cross_entropy_workspace_bytes()
  int64_t* first_bad_label = nullptr;
};

size_t cross_entropy_workspace_bytes(const CrossEntropyParams& params);
void cross_entropy_cpu(const CrossEntropyParams& params);
void cross_entropy_cuda(const CrossEntropyParams& params, void* stream);

struct OrpoParams {
  DType dtype = DType::Float32;
  int64_t B = 0, T_chosen = 0, T_rejected = 0, V = 0;
  const void* chosen_logits = nullptr;       // [B, T_chosen, V]
  const void* rejected_logits = nullptr;     // [B, T_rejected, V]
  const int32_t* chosen_labels = nullptr;    // [B, T_chosen]
  const int32_t* rejected_labels = nullptr;  // [B, T_rejected]
  const int32_t* nll_labels = nullptr;       // [B, T_chosen]
  int64_t ignore_index = -100;
  double lambda = 0.1;
  GoldfishRule goldfish;  // on the SFT (nll) tokens, layout [B, T_chosen]
  double grad_scale = 1;

  // outputs (output type); 0-d unless noted
  void* loss = nullptr;
  void* nll_loss = nullptr;
  void* or_loss = nullptr;
  void* chosen_logps = nullptr;    // [B]
  void* rejected_logps = nullptr;  // [B]
  void* log_odds = nullptr;        // [B]
  void* rewards_chosen = nullptr;
  void* rewards_rejected = nullptr;
  void* rewards_accuracy = nullptr;
  void* rewards_margin = nullptr;
  void* log_odds_ratio = nullptr;
  void* log_odds_chosen = nullptr;
  void* grad_chosen = nullptr;    // [B, T_chosen, V] or nullptr
  void* grad_rejected = nullptr;  // [B, T_rejected, V] or nullptr

  void* workspace = nullptr;  // orpo_workspace_bytes()
  int64_t* first_bad_chosen_label = nullptr;
  int64_t* first_bad_rejected_label = nullptr;
  int64_t* first_bad_nll_label = nullptr;
  int64_t* first_empty_chosen = nullptr;    // a pair b with no supervised chosen token
  int64_t* first_empty_rejected = nullptr;  // likewise for rejected
};

size_t orpo_workspace_bytes(const OrpoParams& params);
void orpo_cpu(const OrpoParams& params);
void orpo_cuda(const OrpoParams& params, void* stream);

// mask[i] = 1 when token i is supervised and kept, else 0 (int32 [rows], rows = sequences·T).
struct GoldfishMaskParams {
  int64_t rows = 0, T = 1;
  const int32_t* labels = nullptr;
  int64_t ignore_index = -100;
  GoldfishRule goldfish;
  int32_t* mask = nullptr;
};
void goldfish_mask_cpu(const GoldfishMaskParams& params);
void goldfish_mask_cuda(const GoldfishMaskParams& params, void* stream);

// labels[s, t] = input_ids[s, t + 1]; ignore_index at t = T − 1.
void shift_labels_cpu(const int32_t* input_ids, int32_t* labels, int64_t rows, int64_t T, int32_t ignore_index);
void shift_labels_cuda(const int32_t* input_ids, int32_t* labels, int64_t rows, int64_t T, int32_t ignore_index,
                       void* stream);

}  // namespace lmk::kernels
