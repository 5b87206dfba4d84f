#include "ops/losses.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/losses/linear_losses.h"
#include "kernels/losses/losses.h"
#include "ops/arg_checks.h"
#include "ops/matmul.h"
#include "ops/op_task.h"
#include "runtime/cuda_call.h"
#include "runtime/storage.h"

namespace lmk::ops {
namespace {

// logits [B,T,V] or [N,V] (rank 3 only when `rank3_only`).
void check_logits(const char* fn, const char* arg, const Tensor& logits, bool rank3_only) {
  check_float(logits, fn, arg);
  if (rank3_only ? logits.shape.size() != 3 : (logits.shape.size() != 2 && logits.shape.size() != 3)) {
    throw_range_error(fn, ": ", arg, " must have shape ", rank3_only ? "[B,T,V]" : "[B,T,V] or [N,V]", ", got ",
                      shape_string(logits.shape));
  }
  int64_t V = logits.shape.back();
  if (V < 1 || V > INT32_MAX) {
    throw_range_error(fn, ": ", arg, " must have a vocabulary size V in [1, 2^31), got ", shape_string(logits.shape));
  }
}

Shape leading(const Shape& s) { return Shape(s.begin(), s.end() - 1); }

void check_labels(const char* fn, const char* arg, const Tensor& labels, const Tensor& logits, const char* logits_arg) {
  check_int32(labels, logits.device(), fn, arg, logits_arg);
  check_shape(labels, leading(logits.shape), fn, arg, logits.shape.size() == 3 ? "[B,T]" : "[N]",
              concat("like ", logits_arg, " ", shape_string(logits.shape)));
}

// Per-token weights shaped like labels: float32 (or float64 next to float64
// `ref`), on ref's device.
void check_token_weights(const char* fn, const std::optional<Tensor>& weights, const Tensor& ref, const char* ref_arg,
                         const Tensor& labels) {
  if (!weights) return;
  if (weights->dtype != DType::Float32 && !(weights->dtype == DType::Float64 && ref.dtype == DType::Float64)) {
    throw_type_error(fn, ": weights must be float32", ref.dtype == DType::Float64 ? " or float64" : "", ", got ",
                     dtype_name(weights->dtype));
  }
  check_device(*weights, ref.device(), fn, "weights", ref_arg);
  check_shape(*weights, labels.shape, fn, "weights", "like labels");
}

// Positions per sequence of a labels tensor: its last dimension (1-D: one sequence).
int64_t positions(const Tensor& labels) { return labels.shape.empty() ? 1 : std::max<int64_t>(labels.shape.back(), 1); }

// The options every loss shares, with their defaults.
struct CommonOptions {
  int64_t ignore_index;
  bool compute_grad;
  double grad_scale;
};

CommonOptions common_options(std::optional<int64_t> ignore_index, std::optional<bool> compute_grad,
                             std::optional<double> grad_scale, const char* fn) {
  CommonOptions o{ignore_index.value_or(-100), compute_grad.value_or(true), grad_scale.value_or(1.0)};
  check_finite(o.grad_scale, fn, "gradScale");
  return o;
}

// The goldfish rule's kernel form; its hashTokens (if any) is read by the task.
GoldfishRule goldfish_rule(OpTask& task, const Tensor& labels, const GoldfishOptions& g, const char* labels_arg) {
  const char* fn = task.fn();
  GoldfishRule rule;
  rule.k = g.k.value_or(4);
  rule.context_width = g.context_width.value_or(13);
  rule.start_position = g.start_position.value_or(0);
  const int64_t seed = g.seed.value_or(0);
  check_at_least(rule.k, 2, fn, "k");
  check_at_least(rule.context_width, 1, fn, "contextWidth");
  check_at_least(rule.start_position, 0, fn, "startPosition");
  if (seed < 0 || seed >= (int64_t(1) << 53))
    throw_range_error(fn, ": seed must be an integer in [0, 2^53), got ", seed);
  rule.drop_below = 1.0 / static_cast<double>(rule.k);
  rule.seed = static_cast<uint64_t>(seed);
  switch (g.strategy.value_or(GoldfishStrategyOption::Hash)) {
    case GoldfishStrategyOption::Static: rule.strategy = kGoldfishStatic; break;
    case GoldfishStrategyOption::Random: rule.strategy = kGoldfishRandom; break;
    case GoldfishStrategyOption::Hash: rule.strategy = kGoldfishHash; break;
  }
  const Tensor& tokens = g.hash_tokens ? *g.hash_tokens : labels;
  if (g.hash_tokens) {
    check_int32(tokens, labels.device(), fn, "hashTokens", labels_arg);
    check_shape(tokens, labels.shape, fn, "hashTokens", concat("like ", labels_arg).c_str());
    task.read(tokens);
  }
  rule.hash_tokens = tokens.data_as<int32_t>();
  return rule;
}

// A value check: a label outside [0, V) (other than ignoreIndex).
int64_t* bad_label_check(OpTask& task, const char* arg, const Tensor& labels, int64_t V, int64_t ignore_index) {
  std::string fn_name = task.fn(), arg_name = arg;
  Shape shape = labels.shape;
  return task.value_check(ErrorKind::Range, [=](int64_t index) {
    return concat(fn_name, ": ", arg_name, " has a value outside [0, ", V, ") other than ignoreIndex ", ignore_index,
                  " at flat index ", index, " (shape ", shape_string(shape), ")");
  });
}

// The fields of a cross-entropy pass that every loss over rows of labels fills
// alike (cross-entropy, goldfish, the linear loss's chunks): the rows, the
// labels and their rule, token weights, the reduction, and where the loss and
// the log-sum-exp go (lse may be absent).
void set_label_rows(kernels::CrossEntropyParams& p, DType dtype, int64_t V, const Tensor& labels, int64_t ignore_index,
                    LossReduction reduction, const std::optional<Tensor>& weights, double grad_scale, Tensor& loss,
                    Tensor* lse) {
  p.dtype = dtype;
  p.V = V;
  p.rows = labels.numel();
  p.T = positions(labels);
  p.labels = labels.data_as<int32_t>();
  p.ignore_index = ignore_index;
  p.reduction = reduction == LossReduction::Mean  ? kernels::kLossMean
                : reduction == LossReduction::Sum ? kernels::kLossSum
                                                  : kernels::kLossNone;
  if (weights) {
    p.weights = weights->data();
    p.weights_dtype = weights->dtype;
  }
  p.grad_scale = grad_scale;
  p.loss = loss.data();
  p.lse = lse ? lse->data() : nullptr;
}

// The goldfish loss's extra outputs (0-d: the means over all supervised and
// over dropped tokens, the two token counts), pointed to by the pass.
struct GoldfishOutputs {
  Tensor loss_all_tokens, loss_dropped_tokens, supervised_tokens, kept_tokens;
};
GoldfishOutputs goldfish_outputs(OpTask& task, DType out, kernels::CrossEntropyParams& p) {
  GoldfishOutputs g{task.output({}, out), task.output({}, out), task.output({}, DType::Int32),
                    task.output({}, DType::Int32)};
  p.loss_all = g.loss_all_tokens.data();
  p.loss_dropped = g.loss_dropped_tokens.data();
  p.supervised_count = g.supervised_tokens.data_as<int32_t>();
  p.kept_count = g.kept_tokens.data_as<int32_t>();
  return g;
}

// ORPO's pairs: chosen [B,T,X] and rejected [B,T',X] alike (dtype, device),
// X the last dim (`last`: V of logits, d of hidden states), B >= 1, T, T' >= 1.
void check_pairs(const char* fn, const Tensor& chosen, const Tensor& rejected, const char* chosen_arg,
                 const char* rejected_arg, const char* last) {
  check_like(rejected, chosen, fn, rejected_arg, chosen_arg);
  const int64_t B = chosen.shape[0], X = chosen.shape[2];
  if (rejected.shape[0] != B || rejected.shape[2] != X) {
    throw_range_error(fn, ": ", rejected_arg, " must have shape [B,T',", last, "] with B = ", B, " and ", last, " = ",
                      X, " like ", chosen_arg, " ", shape_string(chosen.shape), ", got ", shape_string(rejected.shape));
  }
  if (B < 1)
    throw_range_error(fn, ": ", chosen_arg, " must hold at least one pair (B >= 1), got ", shape_string(chosen.shape));
  if (chosen.shape[1] < 1 || rejected.shape[1] < 1) {
    const bool empty_chosen = chosen.shape[1] < 1;
    throw_range_error(fn, ": every pair needs a supervised token, but ", empty_chosen ? chosen_arg : rejected_arg,
                      " has no positions: ", shape_string(empty_chosen ? chosen.shape : rejected.shape));
  }
}

// hidden [B,T,d] or [N,d] (rank 3 only when `rank3_only`), float.
void check_hidden(const char* fn, const char* arg, const Tensor& hidden, bool rank3_only) {
  check_float(hidden, fn, arg);
  if (rank3_only ? hidden.shape.size() != 3 : (hidden.shape.size() != 2 && hidden.shape.size() != 3)) {
    throw_range_error(fn, ": ", arg, " must have shape ", rank3_only ? "[B,T,d]" : "[B,T,d] or [N,d]", ", got ",
                      shape_string(hidden.shape));
  }
}

// weight [V,d] like hidden (dtype, device) with V in [1, 2^31); bias [V] likewise.
void check_head(const char* fn, const Tensor& hidden, const char* hidden_arg, const Tensor& weight,
                const std::optional<Tensor>& bias) {
  check_like(weight, hidden, fn, "weight", hidden_arg);
  const int64_t d = hidden.shape.back();
  if (weight.shape.size() != 2 || weight.shape[1] != d) {
    throw_range_error(fn, ": weight must have shape [V,d] with d = ", d, " (the last dim of ", hidden_arg, " ",
                      shape_string(hidden.shape), "), got ", shape_string(weight.shape));
  }
  if (weight.shape[0] < 1 || weight.shape[0] > INT32_MAX) {
    throw_range_error(fn, ": weight must have a vocabulary size V in [1, 2^31) rows, got ", shape_string(weight.shape));
  }
  if (bias) {
    check_like(*bias, hidden, fn, "bias", hidden_arg);
    check_shape(*bias, {weight.shape[0]}, fn, "bias", "[V]", concat("like weight ", shape_string(weight.shape)));
  }
}

// labels shaped like hidden without its last dim.
void check_hidden_labels(const char* fn, const char* arg, const Tensor& labels, const Tensor& hidden,
                         const char* hidden_arg) {
  check_int32(labels, hidden.device(), fn, arg, hidden_arg);
  check_shape(labels, leading(hidden.shape), fn, arg, hidden.shape.size() == 3 ? "[B,T]" : "[N]",
              concat("like ", hidden_arg, " ", shape_string(hidden.shape), " without d"));
}

int64_t chunk_rows_option(std::optional<int64_t> chunk_size, const char* fn, const Device& device, int64_t rows,
                          int64_t V, DType dtype, bool with_grad) {
  if (chunk_size) {
    check_at_least(*chunk_size, 1, fn, "chunkSize");
    return std::min<int64_t>(*chunk_size, std::max<int64_t>(rows, 1));
  }
  return default_linear_chunk_rows(device, rows, V, dtype, with_grad);
}

kernels::LinearHead linear_head(OpTask& task, const Tensor& weight, const std::optional<Tensor>& bias,
                                int64_t chunk_rows, bool with_grad, std::optional<Tensor>* grad_weight,
                                std::optional<Tensor>* grad_bias) {
  kernels::LinearHead h;
  h.dtype = weight.dtype;
  h.V = weight.shape[0];
  h.d = weight.shape[1];
  h.weight = weight.data();
  h.bias = bias ? bias->data() : nullptr;
  h.chunk_rows = chunk_rows;
  h.gemm = gemm_kernel();
  if (with_grad) {
    *grad_weight = task.output(weight.shape, weight.dtype);
    h.grad_weight = (*grad_weight)->data();
    if (bias) {
      *grad_bias = task.output(bias->shape, bias->dtype);
      h.grad_bias = (*grad_bias)->data();
    }
  }
  task.reads(weight, bias);
  return h;
}

// What orpo and linear_orpo share once their [B,T,*] inputs are checked:
// nllLabels and the options (checked, defaults resolved), the labels read,
// the goldfish rule, every output but the gradients, and the params' sizes,
// labels, options and output pointers.
struct OrpoSetup {
  const Tensor* nll_labels;
  int64_t ignore_index, V;
  bool compute_grad;
};

OrpoSetup orpo_setup(OpTask& task, const Tensor& chosen_labels, const Tensor& rejected_labels, const char* chosen_arg,
                     DType dtype, int64_t V, const OrpoOptions& o, OrpoResult* r, kernels::OrpoParams* p) {
  const char* fn = task.fn();
  const Tensor& nll_labels = o.nll_labels ? *o.nll_labels : chosen_labels;
  if (o.nll_labels) {
    check_int32(nll_labels, task.device(), fn, "nllLabels", chosen_arg);
    check_shape(nll_labels, chosen_labels.shape, fn, "nllLabels", "like chosenLabels [B,T]");
  }
  const double lambda = o.lambda.value_or(0.1);
  check_finite(lambda, fn, "lambda");
  const auto [ignore_index, compute_grad, grad_scale] =
      common_options(o.ignore_index, o.compute_grad, o.grad_scale, fn);
  task.reads(chosen_labels, rejected_labels, nll_labels);
  if (o.goldfish) p->goldfish = goldfish_rule(task, nll_labels, *o.goldfish, "nllLabels");

  const int64_t B = chosen_labels.shape[0];
  const DType out = accumulation_dtype(dtype);
  r->loss = task.output({}, out);
  r->nll_loss = task.output({}, out);
  r->or_loss = task.output({}, out);
  r->chosen_logps = task.output({B}, out);
  r->rejected_logps = task.output({B}, out);
  r->log_odds = task.output({B}, out);
  for (Tensor* metric : {&r->rewards_chosen, &r->rewards_rejected, &r->rewards_accuracy, &r->rewards_margin,
                         &r->log_odds_ratio, &r->log_odds_chosen}) {
    *metric = task.output({}, out);
  }
  p->dtype = dtype;
  p->B = B;
  p->T_chosen = chosen_labels.shape[1];
  p->T_rejected = rejected_labels.shape[1];
  p->V = V;
  p->chosen_labels = chosen_labels.data_as<int32_t>();
  p->rejected_labels = rejected_labels.data_as<int32_t>();
  p->nll_labels = nll_labels.data_as<int32_t>();
  p->ignore_index = ignore_index;
  p->lambda = lambda;
  p->grad_scale = grad_scale;
  p->loss = r->loss.data();
  p->nll_loss = r->nll_loss.data();
  p->or_loss = r->or_loss.data();
  p->chosen_logps = r->chosen_logps.data();
  p->rejected_logps = r->rejected_logps.data();
  p->log_odds = r->log_odds.data();
  p->rewards_chosen = r->rewards_chosen.data();
  p->rewards_rejected = r->rewards_rejected.data();
  p->rewards_accuracy = r->rewards_accuracy.data();
  p->rewards_margin = r->rewards_margin.data();
  p->log_odds_ratio = r->log_odds_ratio.data();
  p->log_odds_chosen = r->log_odds_chosen.data();
  return {&nll_labels, ignore_index, V, compute_grad};
}

// ORPO's value checks (after every output is declared): bad labels on each
// side, and pairs with no supervised chosen / rejected token.
void orpo_value_checks(OpTask& task, const OrpoSetup& setup, const Tensor& chosen_labels, const Tensor& rejected_labels,
                       kernels::OrpoParams* p) {
  const int64_t V = setup.V, ignore_index = setup.ignore_index;
  p->first_bad_chosen_label = bad_label_check(task, "chosenLabels", chosen_labels, V, ignore_index);
  p->first_bad_rejected_label = bad_label_check(task, "rejectedLabels", rejected_labels, V, ignore_index);
  p->first_bad_nll_label = bad_label_check(task, "nllLabels", *setup.nll_labels, V, ignore_index);
  auto empty_check = [&](const char* arg, const Tensor& labels) {
    std::string fn_name = task.fn(), arg_name = arg;
    Shape shape = labels.shape;
    return task.value_check(ErrorKind::Range, [=](int64_t b) {
      return concat(fn_name, ": ", arg_name, " has no supervised token (every label is ignoreIndex ", ignore_index,
                    ") in pair ", b, " (flat index ", b * shape[1], " of shape ", shape_string(shape), " starts it)");
    });
  };
  p->first_empty_chosen = empty_check("chosenLabels", chosen_labels);
  p->first_empty_rejected = empty_check("rejectedLabels", rejected_labels);
}

}  // namespace

int64_t default_linear_chunk_rows(const Device& device, int64_t rows, int64_t V, DType dtype, bool with_grad) {
  const int64_t row_bytes = V * static_cast<int64_t>(dtype_size(dtype)) * (with_grad ? 2 : 1);
  int64_t chunk;
  if (device.is_cpu()) {
    chunk = std::max<int64_t>(kLinearCpuChunkBytes / row_bytes, kLinearCpuMinRows);
  } else {
    // An unknown free memory (0) leaves the fixed cap.
    const int64_t free_bytes = static_cast<int64_t>(cuda_free_memory(device.index));
    const int64_t budget =
        free_bytes > 0 ? std::min<int64_t>(free_bytes / 16, kLinearCudaChunkBytes) : kLinearCudaChunkBytes;
    chunk = budget / row_bytes;
  }
  return std::clamp<int64_t>(chunk, 1, std::max<int64_t>(rows, 1));
}

LossReduction loss_reduction_from_name(const std::string& name, const char* fn) {
  return value_from_name<LossReduction>(
      name, {{"mean", LossReduction::Mean}, {"sum", LossReduction::Sum}, {"none", LossReduction::None}}, fn,
      "reduction");
}

GoldfishStrategyOption goldfish_strategy_from_name(const std::string& name, const char* fn) {
  return value_from_name<GoldfishStrategyOption>(name,
                                                 {{"hash", GoldfishStrategyOption::Hash},
                                                  {"static", GoldfishStrategyOption::Static},
                                                  {"random", GoldfishStrategyOption::Random}},
                                                 fn, "strategy");
}

CrossEntropyResult cross_entropy(const Tensor& logits, const Tensor& labels, std::optional<int64_t> ignore_index_option,
                                 std::optional<LossReduction> reduction_option, const std::optional<Tensor>& weights,
                                 std::optional<bool> compute_grad_option, std::optional<double> grad_scale_option) {
  const char* fn = "losses.crossEntropy";
  check_logits(fn, "logits", logits, false);
  check_labels(fn, "labels", labels, logits, "logits");
  check_token_weights(fn, weights, logits, "logits", labels);
  const auto [ignore_index, compute_grad, grad_scale] =
      common_options(ignore_index_option, compute_grad_option, grad_scale_option, fn);
  const LossReduction reduction = reduction_option.value_or(LossReduction::Mean);

  OpTask task(fn, logits.device());
  DType out = accumulation_dtype(logits.dtype);
  CrossEntropyResult result;
  result.loss = task.output(reduction == LossReduction::None ? labels.shape : Shape{}, out);
  result.lse = task.output(labels.shape, out);
  if (compute_grad) result.grad_logits = task.output(logits.shape, logits.dtype);
  task.reads(logits, labels, weights);

  kernels::CrossEntropyParams p;
  set_label_rows(p, logits.dtype, logits.shape.back(), labels, ignore_index, reduction, weights, grad_scale,
                 result.loss, &result.lse);
  p.logits = logits.data();
  p.grad = compute_grad ? result.grad_logits->data() : nullptr;
  p.workspace = task.workspace(kernels::cross_entropy_workspace_bytes(p));
  p.first_bad_label = bad_label_check(task, "labels", labels, p.V, ignore_index);
  task.may_run_inline();
  task.enqueue([p] { kernels::cross_entropy_cpu(p); },
               [p](void* s) { LMK_CUDA_CALL(kernels::cross_entropy_cuda(p, s)); });
  return result;
}

Tensor goldfish_mask(const Tensor& labels, std::optional<int64_t> ignore_index, const GoldfishOptions& goldfish) {
  const char* fn = "losses.goldfishMask";
  check_int32_input(labels, fn, "labels");
  if (labels.shape.size() != 1 && labels.shape.size() != 2) {
    throw_range_error(fn, ": labels must have shape [B,T] or [N], got ", shape_string(labels.shape));
  }
  OpTask task(fn, labels.device());
  kernels::GoldfishMaskParams p;
  p.goldfish = goldfish_rule(task, labels, goldfish, "labels");
  Tensor mask = task.output(labels.shape, DType::Int32);
  task.read(labels);
  p.rows = labels.numel();
  p.T = positions(labels);
  p.labels = labels.data_as<int32_t>();
  p.ignore_index = common_options(ignore_index, std::nullopt, std::nullopt, fn).ignore_index;
  p.mask = mask.data_as<int32_t>();
  task.may_run_inline();
  task.enqueue([p] { kernels::goldfish_mask_cpu(p); },
               [p](void* s) { LMK_CUDA_CALL(kernels::goldfish_mask_cuda(p, s)); });
  return mask;
}

GoldfishLossResult goldfish_loss(const Tensor& logits, const Tensor& labels, std::optional<int64_t> ignore_index_option,
                                 const GoldfishOptions& goldfish, std::optional<bool> compute_grad_option,
                                 std::optional<double> grad_scale_option) {
  const char* fn = "losses.goldfishLoss";
  check_logits(fn, "logits", logits, false);
  check_labels(fn, "labels", labels, logits, "logits");
  const auto [ignore_index, compute_grad, grad_scale] =
      common_options(ignore_index_option, compute_grad_option, grad_scale_option, fn);
  OpTask task(fn, logits.device());
  task.reads(logits, labels);
  kernels::CrossEntropyParams p;
  p.goldfish = goldfish_rule(task, labels, goldfish, "labels");

  DType out = accumulation_dtype(logits.dtype);
  GoldfishLossResult result;
  result.loss = task.output({}, out);
  GoldfishOutputs extra = goldfish_outputs(task, out, p);
  result.loss_all_tokens = extra.loss_all_tokens;
  result.loss_dropped_tokens = extra.loss_dropped_tokens;
  result.supervised_tokens = extra.supervised_tokens;
  result.kept_tokens = extra.kept_tokens;
  if (compute_grad) result.grad_logits = task.output(logits.shape, logits.dtype);

  set_label_rows(p, logits.dtype, logits.shape.back(), labels, ignore_index, LossReduction::Mean, std::nullopt,
                 grad_scale, result.loss, nullptr);
  p.logits = logits.data();
  p.grad = compute_grad ? result.grad_logits->data() : nullptr;
  p.workspace = task.workspace(kernels::cross_entropy_workspace_bytes(p));
  p.first_bad_label = bad_label_check(task, "labels", labels, p.V, ignore_index);
  task.may_run_inline();
  task.enqueue([p] { kernels::cross_entropy_cpu(p); },
               [p](void* s) { LMK_CUDA_CALL(kernels::cross_entropy_cuda(p, s)); });
  return result;
}

OrpoResult orpo(const Tensor& chosen_logits, const Tensor& rejected_logits, const Tensor& chosen_labels,
                const Tensor& rejected_labels, const OrpoOptions& o) {
  const char* fn = "losses.orpo";
  check_logits(fn, "chosenLogits", chosen_logits, true);
  check_logits(fn, "rejectedLogits", rejected_logits, true);
  check_pairs(fn, chosen_logits, rejected_logits, "chosenLogits", "rejectedLogits", "V");
  const int64_t V = chosen_logits.shape[2];
  check_labels(fn, "chosenLabels", chosen_labels, chosen_logits, "chosenLogits");
  check_labels(fn, "rejectedLabels", rejected_labels, rejected_logits, "rejectedLogits");
  OpTask task(fn, chosen_logits.device());
  task.reads(chosen_logits, rejected_logits);
  kernels::OrpoParams p;
  OrpoResult r;
  const OrpoSetup setup =
      orpo_setup(task, chosen_labels, rejected_labels, "chosenLogits", chosen_logits.dtype, V, o, &r, &p);
  if (setup.compute_grad) {
    r.grad_chosen_logits = task.output(chosen_logits.shape, chosen_logits.dtype);
    r.grad_rejected_logits = task.output(rejected_logits.shape, rejected_logits.dtype);
    p.grad_chosen = r.grad_chosen_logits->data();
    p.grad_rejected = r.grad_rejected_logits->data();
  }
  p.chosen_logits = chosen_logits.data();
  p.rejected_logits = rejected_logits.data();
  p.workspace = task.workspace(kernels::orpo_workspace_bytes(p));
  orpo_value_checks(task, setup, chosen_labels, rejected_labels, &p);
  task.may_run_inline();
  task.enqueue([p] { kernels::orpo_cpu(p); }, [p](void* s) { LMK_CUDA_CALL(kernels::orpo_cuda(p, s)); });
  return r;
}

LinearCrossEntropyResult linear_cross_entropy(const Tensor& hidden, const Tensor& weight, const Tensor& labels,
                                              const LinearCrossEntropyOptions& o) {
  const char* fn = "losses.linearCrossEntropy";
  check_hidden(fn, "hidden", hidden, false);
  check_head(fn, hidden, "hidden", weight, o.bias);
  check_hidden_labels(fn, "labels", labels, hidden, "hidden");
  const std::optional<Tensor>& weights = o.weights;
  check_token_weights(fn, weights, hidden, "hidden", labels);
  const auto [ignore_index, compute_grad, grad_scale] =
      common_options(o.ignore_index, o.compute_grad, o.grad_scale, fn);
  const LossReduction reduction = o.reduction.value_or(LossReduction::Mean);
  const bool goldfish = o.goldfish.has_value();
  if (goldfish && reduction != LossReduction::Mean) {
    throw_range_error(fn, ": reduction must be 'mean' with goldfish (the goldfish loss is the mean over kept tokens)");
  }
  if (goldfish && weights) throw_range_error(fn, ": weights cannot be combined with goldfish");
  const int64_t V = weight.shape[0], rows = labels.numel();
  const int64_t chunk_rows = chunk_rows_option(o.chunk_size, fn, hidden.device(), rows, V, hidden.dtype, compute_grad);

  OpTask task(fn, hidden.device());
  task.reads(hidden, labels, weights);
  kernels::LinearCrossEntropyParams lp;
  kernels::CrossEntropyParams& p = lp.loss;
  if (goldfish) p.goldfish = goldfish_rule(task, labels, *o.goldfish, "labels");
  const DType out = accumulation_dtype(hidden.dtype);
  LinearCrossEntropyResult r;
  r.loss = task.output(reduction == LossReduction::None ? labels.shape : Shape{}, out);
  r.lse = task.output(labels.shape, out);
  if (goldfish) {
    GoldfishOutputs extra = goldfish_outputs(task, out, p);
    r.loss_all_tokens = extra.loss_all_tokens;
    r.loss_dropped_tokens = extra.loss_dropped_tokens;
    r.supervised_tokens = extra.supervised_tokens;
    r.kept_tokens = extra.kept_tokens;
  }
  if (compute_grad) r.grad_hidden = task.output(hidden.shape, hidden.dtype);
  lp.head = linear_head(task, weight, o.bias, chunk_rows, compute_grad, &r.grad_weight, &r.grad_bias);

  set_label_rows(p, hidden.dtype, V, labels, ignore_index, reduction, weights, grad_scale, r.loss, &r.lse);
  // A flag here (the driver points it at its chunk buffer): gradients wanted.
  p.grad = compute_grad ? r.grad_hidden->data() : nullptr;
  lp.hidden = hidden.data();
  lp.grad_hidden = compute_grad ? r.grad_hidden->data() : nullptr;
  lp.workspace = task.workspace(kernels::linear_cross_entropy_workspace_bytes(lp));
  p.first_bad_label = bad_label_check(task, "labels", labels, V, ignore_index);
  task.enqueue([lp] { kernels::linear_cross_entropy_cpu(lp); },
               [lp](void* s) { LMK_CUDA_CALL(kernels::linear_cross_entropy_cuda(lp, s)); });
  return r;
}

LinearOrpoResult linear_orpo(const Tensor& chosen_hidden, const Tensor& rejected_hidden, const Tensor& weight,
                             const Tensor& chosen_labels, const Tensor& rejected_labels, const LinearOrpoOptions& o) {
  const char* fn = "losses.linearOrpo";
  check_hidden(fn, "chosenHidden", chosen_hidden, true);
  check_hidden(fn, "rejectedHidden", rejected_hidden, true);
  check_pairs(fn, chosen_hidden, rejected_hidden, "chosenHidden", "rejectedHidden", "d");
  check_head(fn, chosen_hidden, "chosenHidden", weight, o.bias);
  check_hidden_labels(fn, "chosenLabels", chosen_labels, chosen_hidden, "chosenHidden");
  check_hidden_labels(fn, "rejectedLabels", rejected_labels, rejected_hidden, "rejectedHidden");
  const int64_t V = weight.shape[0];
  const int64_t rows = chosen_hidden.shape[0] * std::max(chosen_hidden.shape[1], rejected_hidden.shape[1]);
  const int64_t chunk_rows = chunk_rows_option(o.chunk_size, fn, chosen_hidden.device(), rows, V, chosen_hidden.dtype,
                                               o.compute_grad.value_or(true));
  OpTask task(fn, chosen_hidden.device());
  task.reads(chosen_hidden, rejected_hidden);
  kernels::LinearOrpoParams lp;
  kernels::OrpoParams& p = lp.loss;
  LinearOrpoResult result;
  const OrpoSetup setup =
      orpo_setup(task, chosen_labels, rejected_labels, "chosenHidden", chosen_hidden.dtype, V, o, &result.orpo, &p);
  if (setup.compute_grad) {
    result.grad_chosen_hidden = task.output(chosen_hidden.shape, chosen_hidden.dtype);
    result.grad_rejected_hidden = task.output(rejected_hidden.shape, rejected_hidden.dtype);
    lp.grad_chosen_hidden = result.grad_chosen_hidden->data();
    lp.grad_rejected_hidden = result.grad_rejected_hidden->data();
    // Flags here (the driver points them at its chunk buffer): gradients wanted.
    p.grad_chosen = p.grad_rejected = lp.grad_chosen_hidden;
  }
  lp.head = linear_head(task, weight, o.bias, chunk_rows, setup.compute_grad, &result.grad_weight, &result.grad_bias);
  lp.chosen_hidden = chosen_hidden.data();
  lp.rejected_hidden = rejected_hidden.data();
  lp.workspace = task.workspace(kernels::linear_orpo_workspace_bytes(lp));
  orpo_value_checks(task, setup, chosen_labels, rejected_labels, &p);
  task.enqueue([lp] { kernels::linear_orpo_cpu(lp); },
               [lp](void* s) { LMK_CUDA_CALL(kernels::linear_orpo_cuda(lp, s)); });
  return result;
}

Tensor shift_labels(const Tensor& input_ids, std::optional<int64_t> ignore_index_option) {
  const char* fn = "losses.shiftLabels";
  check_int32_input(input_ids, fn, "inputIds");
  if (input_ids.shape.size() != 1 && input_ids.shape.size() != 2) {
    throw_range_error(fn, ": inputIds must have shape [B,T] or [N], got ", shape_string(input_ids.shape));
  }
  const int64_t ignore_index = common_options(ignore_index_option, std::nullopt, std::nullopt, fn).ignore_index;
  if (ignore_index < INT32_MIN || ignore_index > INT32_MAX) {
    throw_range_error(fn, ": ignoreIndex must fit in int32, got ", ignore_index);
  }
  OpTask task(fn, input_ids.device());
  Tensor labels = task.output(input_ids.shape, DType::Int32);
  task.read(input_ids);
  int64_t T = input_ids.shape.back();
  int64_t rows = T > 0 ? input_ids.numel() / T : 0;
  const int32_t* in = input_ids.data_as<int32_t>();
  int32_t* outp = labels.data_as<int32_t>();
  int32_t ignore = static_cast<int32_t>(ignore_index);
  task.may_run_inline();
  task.enqueue([=] { kernels::shift_labels_cpu(in, outp, rows, T, ignore); },
               [=](void* s) { LMK_CUDA_CALL(kernels::shift_labels_cuda(in, outp, rows, T, ignore, s)); });
  return labels;
}

}  // namespace lmk::ops
