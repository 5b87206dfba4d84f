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
#include <string>

#include "runtime/tensor.h"

namespace lmk::ops {

// Options left absent take the defaults of docs/api.md, set here:
//   ignoreIndex -100, reduction 'mean', computeGrad true, gradScale 1,
//   goldfish k 4, strategy 'hash', contextWidth 13, seed 0, startPosition 0,
//   ORPO lambda 0.1.
enum class LossReduction { Mean, Sum, None };
enum class GoldfishStrategyOption { Hash, Static, Random };

// The JS API's names: 'mean' | 'sum' | 'none' and 'hash' | 'static' | 'random'
// (RangeError naming fn and listing them otherwise).
LossReduction loss_reduction_from_name(const std::string& name, const char* fn);
GoldfishStrategyOption goldfish_strategy_from_name(const std::string& name, const char* fn);

struct GoldfishOptions {
  std::optional<int64_t> k;  // >= 2
  std::optional<GoldfishStrategyOption> strategy;
  std::optional<int64_t> context_width;   // >= 1
  std::optional<int64_t> seed;            // in [0, 2^53)
  std::optional<int64_t> start_position;  // >= 0
  std::optional<Tensor> hash_tokens;      // int32 like labels; default labels
};

struct CrossEntropyResult {
  Tensor loss;  // 0-d, or shaped like labels for LossReduction::None (0 at ignored tokens)
  Tensor lse;   // shaped like labels (every row, ignored ones included)
  std::optional<Tensor> grad_logits;
};

// 'mean' divides Σ weight_i·loss_i by the number of supervised tokens; with
// none the loss is 0 and the gradient 0 (PyTorch gives NaN). The gradient is
// of the returned loss (of Σ_i loss_i for 'none'), times grad_scale.
CrossEntropyResult cross_entropy(const Tensor& logits, const Tensor& labels,
                                 std::optional<int64_t> ignore_index = std::nullopt,
                                 std::optional<LossReduction> reduction = std::nullopt,
                                 const std::optional<Tensor>& weights = std::nullopt,
                                 std::optional<bool> compute_grad = std::nullopt,
                                 std::optional<double> grad_scale = std::nullopt);

// int32 like labels: 1 kept, 0 dropped or ignored.
Tensor goldfish_mask(const Tensor& labels, std::optional<int64_t> ignore_index, const GoldfishOptions& goldfish);

struct GoldfishLossResult {
  Tensor loss, loss_all_tokens, loss_dropped_tokens;  // 0-d
  Tensor supervised_tokens, kept_tokens;              // 0-d int32
  std::optional<Tensor> grad_logits;
};
GoldfishLossResult goldfish_loss(const Tensor& logits, const Tensor& labels, std::optional<int64_t> ignore_index,
                                 const GoldfishOptions& goldfish, std::optional<bool> compute_grad = std::nullopt,
                                 std::optional<double> grad_scale = std::nullopt);

struct OrpoOptions {
  std::optional<Tensor> nll_labels;  // default chosen_labels
  std::optional<double> lambda;      // finite
  std::optional<int64_t> ignore_index;
  std::optional<GoldfishOptions> goldfish;  // on the SFT term
  std::optional<bool> compute_grad;
  std::optional<double> grad_scale;  // finite
};

struct OrpoResult {
  Tensor loss, nll_loss, or_loss;                                                                              // 0-d
  Tensor chosen_logps, rejected_logps, log_odds;                                                               // [B]
  Tensor rewards_chosen, rewards_rejected, rewards_accuracy, rewards_margin, log_odds_ratio, log_odds_chosen;  // 0-d
  std::optional<Tensor> grad_chosen_logits, grad_rejected_logits;
};
OrpoResult orpo(const Tensor& chosen_logits, const Tensor& rejected_logits, const Tensor& chosen_labels,
                const Tensor& rejected_labels, const OrpoOptions& options = {});

// Losses from hidden states (docs/api.md "Losses from hidden states"): the
// head logits = hidden · weightᵀ (+ bias) fused with the loss, chunk by
// chunk; never more than a chunk of logits. hidden [B,T,d] or [N,d] (ORPO:
// [B,T,d] and [B,T',d]), weight [V,d], bias [V]; results and gradients as
// the logits versions followed by the matmul's backward. chunk_size: rows per
// chunk (>= 1); absent: default_linear_chunk_rows().
struct LinearCrossEntropyOptions {
  std::optional<Tensor> bias;
  std::optional<int64_t> ignore_index;
  std::optional<LossReduction> reduction;  // 'mean' only with goldfish
  std::optional<Tensor> weights;           // not with goldfish
  std::optional<GoldfishOptions> goldfish;
  std::optional<bool> compute_grad;
  std::optional<double> grad_scale;
  std::optional<int64_t> chunk_size;
};

struct LinearCrossEntropyResult {
  Tensor loss, lse;  // as cross_entropy (with goldfish: as goldfish_loss, lse still returned)
  std::optional<Tensor> grad_hidden, grad_weight, grad_bias;  // grad_bias only with a bias
  // with goldfish only
  std::optional<Tensor> loss_all_tokens, loss_dropped_tokens, supervised_tokens, kept_tokens;
};
LinearCrossEntropyResult linear_cross_entropy(const Tensor& hidden, const Tensor& weight, const Tensor& labels,
                                              const LinearCrossEntropyOptions& options = {});

struct LinearOrpoOptions : OrpoOptions {
  std::optional<Tensor> bias;
  std::optional<int64_t> chunk_size;
};

struct LinearOrpoResult {
  OrpoResult orpo;  // without grad_chosen_logits / grad_rejected_logits
  std::optional<Tensor> grad_chosen_hidden, grad_rejected_hidden, grad_weight, grad_bias;
};
LinearOrpoResult linear_orpo(const Tensor& chosen_hidden, const Tensor& rejected_hidden, const Tensor& weight,
                             const Tensor& chosen_labels, const Tensor& rejected_labels,
                             const LinearOrpoOptions& options = {});

// The default rows per chunk for `rows` rows of a vocabulary of V on `device`
// (docs/api.md "Choices where the contract is silent"):
//   CPU: as many rows as keep a chunk of logits and its gradient within
//        kLinearCpuChunkBytes (a cache-sized block), but at least
//        kLinearCpuMinRows: the chunk's GEMMs against the whole weight need
//        that many rows to be compute-bound (with fewer, every chunk streams
//        the weight from memory again: 1.7× slower than the unfused path at
//        64 rows, N 2048 × d 1024 × V 32 000, bench/RESULTS.md).
//   CUDA: the chunk's logits and gradient within 1/16 of the free memory
//        and kLinearCudaChunkBytes.
// Never more than `rows`, at least 1.
constexpr int64_t kLinearCpuChunkBytes = int64_t(4) << 20;
constexpr int64_t kLinearCpuMinRows = 256;
constexpr int64_t kLinearCudaChunkBytes = int64_t(512) << 20;
int64_t default_linear_chunk_rows(const Device& device, int64_t rows, int64_t V, DType dtype, bool with_grad);

// labels[..., t] = input_ids[..., t + 1]; ignore_index (fits int32) at the last position.
Tensor shift_labels(const Tensor& input_ids, std::optional<int64_t> ignore_index = std::nullopt);

}  // namespace lmk::ops
