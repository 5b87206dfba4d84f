// Losses (docs/api.md#losses): cross-entropy with its gradient in the same pass,
// goldfish loss and mask, ORPO, shiftLabels. Validate everything here, then
// allocate outputs and enqueue (kernels/losses/). Function names in errors
// are the JS API's: losses.crossEntropy, losses.goldfishMask, ...
//
// Shapes: logits [B,T,V] or [N,V] with labels [B,T] or [N] (int32). Token
// positions (goldfish) run along the last label dimension; a 1-D labels
// tensor is one sequence. Float results are float32, or float64 for float64
// logits; counts are int32; scalars are 0-d.
#pragma once
#include <cstdint>
#include <optional>

#include "runtime/tensor.h"

namespace lmk::ops {

enum class LossReduction { Mean, Sum, None };
enum class GoldfishStrategyOption { Hash, Static, Random };

struct GoldfishOptions {
  int64_t k = 4;  // >= 2
  GoldfishStrategyOption strategy = GoldfishStrategyOption::Hash;
  int64_t context_width = 13;  // >= 1
  uint64_t seed = 0;
  int64_t start_position = 0;         // >= 0
  std::optional<Tensor> hash_tokens;  // int32 like labels; default labels
};

struct CrossEntropyResult {
  Tensor loss;  // 0-d, or shaped like labels for LossReduction::None (0 at ignored tokens)
  Tensor lse;   // shaped like labels (every row, ignored ones included)
  std::optional<Tensor> grad_logits;
};

// 'mean' divides Σ weight_i·loss_i by the number of supervised tokens; with
// none the loss is 0 and the gradient 0 (PyTorch gives NaN). The gradient is
// of the returned loss (of Σ_i loss_i for 'none'), times grad_scale.
CrossEntropyResult cross_entropy(const Tensor& logits, const Tensor& labels, int64_t ignore_index = -100,
                                 LossReduction reduction = LossReduction::Mean,
                                 const std::optional<Tensor>& weights = std::nullopt, bool compute_grad = true,
                                 double grad_scale = 1.0);

// int32 like labels: 1 kept, 0 dropped or ignored.
Tensor goldfish_mask(const Tensor& labels, int64_t ignore_index, const GoldfishOptions& goldfish);

struct GoldfishLossResult {
  Tensor loss, loss_all_tokens, loss_dropped_tokens;  // 0-d
  Tensor supervised_tokens, kept_tokens;              // 0-d int32
  std::optional<Tensor> grad_logits;
};
GoldfishLossResult goldfish_loss(const Tensor& logits, const Tensor& labels, int64_t ignore_index,
                                 const GoldfishOptions& goldfish, bool compute_grad = true, double grad_scale = 1.0);

struct OrpoOptions {
  std::optional<Tensor> nll_labels;  // default chosen_labels
  double lambda = 0.1;
  int64_t ignore_index = -100;
  std::optional<GoldfishOptions> goldfish;  // on the SFT term
  bool compute_grad = true;
  double grad_scale = 1.0;
};

struct OrpoResult {
  Tensor loss, nll_loss, or_loss;                                                                              // 0-d
  Tensor chosen_logps, rejected_logps, log_odds;                                                               // [B]
  Tensor rewards_chosen, rewards_rejected, rewards_accuracy, rewards_margin, log_odds_ratio, log_odds_chosen;  // 0-d
  std::optional<Tensor> grad_chosen_logits, grad_rejected_logits;
};
OrpoResult orpo(const Tensor& chosen_logits, const Tensor& rejected_logits, const Tensor& chosen_labels,
                const Tensor& rejected_labels, const OrpoOptions& options = {});

// labels[..., t] = input_ids[..., t + 1]; ignore_index at the last position.
Tensor shift_labels(const Tensor& input_ids, int64_t ignore_index = -100);

}  // namespace lmk::ops
