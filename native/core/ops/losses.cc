#include "ops/losses.h"

#include <cmath>
#include <string>
#include <vector>

#include "kernels/losses/losses.h"
#include "ops/tensor_ops.h"
#include "runtime/cuda_call.h"
#include "runtime/stream.h"

namespace lmk::ops {
namespace {

void check_float(const char* fn, const char* arg, const Tensor& t) {
  if (!dtype_is_float(t.dtype)) {
    throw_type_error(fn, ": ", arg, " must be float32, float64, bfloat16 or float16, got ", dtype_name(t.dtype));
  }
}

void check_int32(const char* fn, const char* arg, const Tensor& t) {
  if (t.dtype != DType::Int32) throw_type_error(fn, ": ", arg, " must be int32, got ", dtype_name(t.dtype));
}

void check_same_device(const char* fn, const char* arg, const Tensor& t, const char* ref_arg, const Tensor& ref) {
  if (t.device() != ref.device()) {
    throw_type_error(fn, ": ", arg, " must be on ", ref.device().to_string(), " like ", ref_arg, ", got ",
                     t.device().to_string());
  }
}

void check_shape(const char* fn, const char* arg, const Tensor& t, const Shape& expected, const char* what) {
  if (t.shape != expected) {
    throw_range_error(fn, ": ", arg, " must have shape ", what, " = ", shape_string(expected), ", got ",
                      shape_string(t.shape));
  }
}

// logits [B,T,V] or [N,V] (rank 3 only when `rank3_only`).
void check_logits(const char* fn, const char* arg, const Tensor& logits, bool rank3_only) {
  check_float(fn, arg, logits);
  check_device_usable(logits.device(), fn, arg);
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
const char* leading_name(const Shape& s) { return s.size() == 3 ? "[B,T]" : "[N]"; }

void check_labels(const char* fn, const char* arg, const Tensor& labels, const Tensor& logits, const char* logits_arg) {
  check_int32(fn, arg, labels);
  check_same_device(fn, arg, labels, logits_arg, logits);
  Shape expected = leading(logits.shape);
  if (labels.shape != expected) {
    throw_range_error(fn, ": ", arg, " must have shape ", leading_name(logits.shape), " = ", shape_string(expected),
                      " like ", logits_arg, " ", shape_string(logits.shape), ", got ", shape_string(labels.shape));
  }
}

void check_grad_scale(const char* fn, double grad_scale) {
  if (!std::isfinite(grad_scale)) throw_range_error(fn, ": gradScale must be a finite number, got ", grad_scale);
}

DType out_dtype(DType logits) { return logits == DType::Float64 ? DType::Float64 : DType::Float32; }

// Positions per sequence of a labels tensor: its last dimension (1-D: one sequence).
int64_t positions(const Tensor& labels) { return labels.shape.empty() ? 1 : std::max<int64_t>(labels.shape.back(), 1); }

GoldfishRule goldfish_rule(const char* fn, const Tensor& labels, const GoldfishOptions& g, const char* labels_arg,
                           std::vector<StoragePtr>* uses) {
  if (g.k < 2) throw_range_error(fn, ": k must be an integer >= 2, got ", g.k);
  if (g.context_width < 1) throw_range_error(fn, ": contextWidth must be an integer >= 1, got ", g.context_width);
  if (g.start_position < 0) throw_range_error(fn, ": startPosition must be an integer >= 0, got ", g.start_position);
  GoldfishRule rule;
  rule.k = g.k;
  rule.drop_below = 1.0 / static_cast<double>(g.k);
  rule.context_width = g.context_width;
  rule.seed = g.seed;
  rule.start_position = g.start_position;
  switch (g.strategy) {
    case GoldfishStrategyOption::Static: rule.strategy = kGoldfishStatic; break;
    case GoldfishStrategyOption::Random: rule.strategy = kGoldfishRandom; break;
    case GoldfishStrategyOption::Hash: rule.strategy = kGoldfishHash; break;
  }
  const Tensor& tokens = g.hash_tokens ? *g.hash_tokens : labels;
  if (g.hash_tokens) {
    check_int32(fn, "hashTokens", tokens);
    check_same_device(fn, "hashTokens", tokens, labels_arg, labels);
    if (tokens.shape != labels.shape) {
      throw_range_error(fn, ": hashTokens must have the shape of ", labels_arg, " ", shape_string(labels.shape),
                        ", got ", shape_string(tokens.shape));
    }
    uses->push_back(tokens.storage);
  }
  rule.hash_tokens = tokens.data_as<int32_t>();
  return rule;
}

Tensor workspace(size_t bytes, const Device& device, const char* fn) {
  return empty({static_cast<int64_t>((bytes + 3) / 4)}, DType::Int32, device, fn);
}

void* stream_handle(const Device& device) { return cuda_stream_handle(device.index); }

// A value check on `device`'s stream: a label outside [0, V) (other than ignoreIndex).
int64_t* bad_label_check(const char* fn, const char* arg, const Tensor& labels, int64_t V, int64_t ignore_index,
                         const std::vector<StoragePtr>& outputs) {
  std::string fn_name = fn, arg_name = arg;
  Shape shape = labels.shape;
  return stream_for(labels.device())
      .add_value_check(
          ErrorKind::Range,
          [=](int64_t index) {
            return concat(fn_name, ": ", arg_name, " has a value outside [0, ", V, ") other than ignoreIndex ",
                          ignore_index, " at flat index ", index, " (shape ", shape_string(shape), ")");
          },
          outputs)
      .first_bad_index;
}

std::vector<StoragePtr> storages(const std::vector<const Tensor*>& tensors) {
  std::vector<StoragePtr> out;
  for (const Tensor* t : tensors) out.push_back(t->storage);
  return out;
}

}  // namespace

CrossEntropyResult cross_entropy(const Tensor& logits, const Tensor& labels, int64_t ignore_index,
                                 LossReduction reduction, const std::optional<Tensor>& weights, bool compute_grad,
                                 double grad_scale) {
  const char* fn = "losses.crossEntropy";
  check_logits(fn, "logits", logits, false);
  check_labels(fn, "labels", labels, logits, "logits");
  if (weights) {
    if (weights->dtype != DType::Float32 && !(weights->dtype == DType::Float64 && logits.dtype == DType::Float64)) {
      throw_type_error(fn, ": weights must be float32", logits.dtype == DType::Float64 ? " or float64" : "", ", got ",
                       dtype_name(weights->dtype));
    }
    check_same_device(fn, "weights", *weights, "logits", logits);
    check_shape(fn, "weights", *weights, labels.shape, "like labels");
  }
  check_grad_scale(fn, grad_scale);

  const Device& device = logits.device();
  DType out = out_dtype(logits.dtype);
  CrossEntropyResult result;
  result.loss = empty(reduction == LossReduction::None ? labels.shape : Shape{}, out, device, fn);
  result.lse = empty(labels.shape, out, device, fn);
  if (compute_grad) result.grad_logits = empty(logits.shape, logits.dtype, device, fn);

  kernels::CrossEntropyParams p;
  p.dtype = logits.dtype;
  p.V = logits.shape.back();
  p.rows = labels.numel();
  p.T = positions(labels);
  p.logits = logits.data();
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
  p.loss = result.loss.data();
  p.lse = result.lse.data();
  p.grad = compute_grad ? result.grad_logits->data() : nullptr;
  Tensor ws = workspace(kernels::cross_entropy_workspace_bytes(p), device, fn);
  p.workspace = ws.data();

  std::vector<const Tensor*> outs = {&result.loss, &result.lse};
  if (compute_grad) outs.push_back(&*result.grad_logits);
  std::vector<StoragePtr> outputs = storages(outs);
  std::vector<StoragePtr> uses = outputs;
  uses.push_back(logits.storage);
  uses.push_back(labels.storage);
  uses.push_back(ws.storage);
  if (weights) uses.push_back(weights->storage);
  p.first_bad_label = bad_label_check(fn, "labels", labels, p.V, ignore_index, outputs);
  Stream& stream = stream_for(device);
  if (device.is_cpu()) {
    stream.enqueue(
        fn, [=] { kernels::cross_entropy_cpu(p); }, uses, outputs);
  } else {
    [[maybe_unused]] void* s = stream_handle(device);
    stream.enqueue(
        fn, [=] { LMK_CUDA_CALL(kernels::cross_entropy_cuda(p, s)); }, uses, outputs);
  }
  return result;
}

Tensor goldfish_mask(const Tensor& labels, int64_t ignore_index, const GoldfishOptions& goldfish) {
  const char* fn = "losses.goldfishMask";
  check_int32(fn, "labels", labels);
  check_device_usable(labels.device(), fn, "labels");
  if (labels.shape.size() != 1 && labels.shape.size() != 2) {
    throw_range_error(fn, ": labels must have shape [B,T] or [N], got ", shape_string(labels.shape));
  }
  std::vector<StoragePtr> uses = {labels.storage};
  kernels::GoldfishMaskParams p;
  p.goldfish = goldfish_rule(fn, labels, goldfish, "labels", &uses);
  const Device& device = labels.device();
  Tensor mask = empty(labels.shape, DType::Int32, device, fn);
  p.rows = labels.numel();
  p.T = positions(labels);
  p.labels = labels.data_as<int32_t>();
  p.ignore_index = ignore_index;
  p.mask = mask.data_as<int32_t>();
  uses.push_back(mask.storage);
  Stream& stream = stream_for(device);
  if (device.is_cpu()) {
    stream.enqueue(fn, [=] { kernels::goldfish_mask_cpu(p); }, uses, {mask.storage});
  } else {
    [[maybe_unused]] void* s = stream_handle(device);
    stream.enqueue(fn, [=] { LMK_CUDA_CALL(kernels::goldfish_mask_cuda(p, s)); }, uses, {mask.storage});
  }
  return mask;
}

GoldfishLossResult goldfish_loss(const Tensor& logits, const Tensor& labels, int64_t ignore_index,
                                 const GoldfishOptions& goldfish, bool compute_grad, double grad_scale) {
  const char* fn = "losses.goldfishLoss";
  check_logits(fn, "logits", logits, false);
  check_labels(fn, "labels", labels, logits, "logits");
  check_grad_scale(fn, grad_scale);
  std::vector<StoragePtr> uses = {logits.storage, labels.storage};
  kernels::CrossEntropyParams p;
  p.goldfish = goldfish_rule(fn, labels, goldfish, "labels", &uses);

  const Device& device = logits.device();
  DType out = out_dtype(logits.dtype);
  GoldfishLossResult result;
  result.loss = empty({}, out, device, fn);
  result.loss_all_tokens = empty({}, out, device, fn);
  result.loss_dropped_tokens = empty({}, out, device, fn);
  result.supervised_tokens = empty({}, DType::Int32, device, fn);
  result.kept_tokens = empty({}, DType::Int32, device, fn);
  if (compute_grad) result.grad_logits = empty(logits.shape, logits.dtype, device, fn);

  p.dtype = logits.dtype;
  p.V = logits.shape.back();
  p.rows = labels.numel();
  p.T = positions(labels);
  p.logits = logits.data();
  p.labels = labels.data_as<int32_t>();
  p.ignore_index = ignore_index;
  p.reduction = kernels::kLossMean;
  p.grad_scale = grad_scale;
  p.loss = result.loss.data();
  p.grad = compute_grad ? result.grad_logits->data() : nullptr;
  p.loss_all = result.loss_all_tokens.data();
  p.loss_dropped = result.loss_dropped_tokens.data();
  p.supervised_count = result.supervised_tokens.data_as<int32_t>();
  p.kept_count = result.kept_tokens.data_as<int32_t>();
  Tensor ws = workspace(kernels::cross_entropy_workspace_bytes(p), device, fn);
  p.workspace = ws.data();

  std::vector<const Tensor*> outs = {&result.loss, &result.loss_all_tokens, &result.loss_dropped_tokens,
                                     &result.supervised_tokens, &result.kept_tokens};
  if (compute_grad) outs.push_back(&*result.grad_logits);
  std::vector<StoragePtr> outputs = storages(outs);
  uses.insert(uses.end(), outputs.begin(), outputs.end());
  uses.push_back(ws.storage);
  p.first_bad_label = bad_label_check(fn, "labels", labels, p.V, ignore_index, outputs);
  Stream& stream = stream_for(device);
  if (device.is_cpu()) {
    stream.enqueue(
        fn, [=] { kernels::cross_entropy_cpu(p); }, uses, outputs);
  } else {
    [[maybe_unused]] void* s = stream_handle(device);
    stream.enqueue(
        fn, [=] { LMK_CUDA_CALL(kernels::cross_entropy_cuda(p, s)); }, uses, outputs);
  }
  return result;
}

OrpoResult orpo(const Tensor& chosen_logits, const Tensor& rejected_logits, const Tensor& chosen_labels,
                const Tensor& rejected_labels, const OrpoOptions& o) {
  const char* fn = "losses.orpo";
  check_logits(fn, "chosenLogits", chosen_logits, true);
  check_logits(fn, "rejectedLogits", rejected_logits, true);
  if (rejected_logits.dtype != chosen_logits.dtype) {
    throw_type_error(fn, ": rejectedLogits must have dtype ", dtype_name(chosen_logits.dtype),
                     " like chosenLogits, got ", dtype_name(rejected_logits.dtype));
  }
  check_same_device(fn, "rejectedLogits", rejected_logits, "chosenLogits", chosen_logits);
  const int64_t B = chosen_logits.shape[0], Tw = chosen_logits.shape[1], V = chosen_logits.shape[2];
  const int64_t Tl = rejected_logits.shape[1];
  if (rejected_logits.shape[0] != B || rejected_logits.shape[2] != V) {
    throw_range_error(fn, ": rejectedLogits must have shape [B,T',V] with B = ", B, " and V = ", V,
                      " like chosenLogits ", shape_string(chosen_logits.shape), ", got ",
                      shape_string(rejected_logits.shape));
  }
  if (B < 1)
    throw_range_error(fn, ": chosenLogits must hold at least one pair (B >= 1), got ",
                      shape_string(chosen_logits.shape));
  if (Tw < 1 || Tl < 1) {
    throw_range_error(fn, ": every pair needs a supervised token, but ", Tw < 1 ? "chosenLogits" : "rejectedLogits",
                      " has no positions: ", shape_string(Tw < 1 ? chosen_logits.shape : rejected_logits.shape));
  }
  check_labels(fn, "chosenLabels", chosen_labels, chosen_logits, "chosenLogits");
  check_labels(fn, "rejectedLabels", rejected_labels, rejected_logits, "rejectedLogits");
  const Tensor& nll_labels = o.nll_labels ? *o.nll_labels : chosen_labels;
  if (o.nll_labels) {
    check_int32(fn, "nllLabels", nll_labels);
    check_same_device(fn, "nllLabels", nll_labels, "chosenLogits", chosen_logits);
    check_shape(fn, "nllLabels", nll_labels, chosen_labels.shape, "like chosenLabels [B,T]");
  }
  if (!std::isfinite(o.lambda)) throw_range_error(fn, ": lambda must be a finite number, got ", o.lambda);
  check_grad_scale(fn, o.grad_scale);
  std::vector<StoragePtr> uses = {chosen_logits.storage, rejected_logits.storage, chosen_labels.storage,
                                  rejected_labels.storage, nll_labels.storage};
  kernels::OrpoParams p;
  if (o.goldfish) p.goldfish = goldfish_rule(fn, nll_labels, *o.goldfish, "nllLabels", &uses);

  const Device& device = chosen_logits.device();
  DType out = out_dtype(chosen_logits.dtype);
  auto scalar = [&] { return empty({}, out, device, fn); };
  OrpoResult r{scalar(),
               scalar(),
               scalar(),
               empty({B}, out, device, fn),
               empty({B}, out, device, fn),
               empty({B}, out, device, fn),
               scalar(),
               scalar(),
               scalar(),
               scalar(),
               scalar(),
               scalar(),
               std::nullopt,
               std::nullopt};
  if (o.compute_grad) {
    r.grad_chosen_logits = empty(chosen_logits.shape, chosen_logits.dtype, device, fn);
    r.grad_rejected_logits = empty(rejected_logits.shape, rejected_logits.dtype, device, fn);
  }
  p.dtype = chosen_logits.dtype;
  p.B = B;
  p.T_chosen = Tw;
  p.T_rejected = Tl;
  p.V = V;
  p.chosen_logits = chosen_logits.data();
  p.rejected_logits = rejected_logits.data();
  p.chosen_labels = chosen_labels.data_as<int32_t>();
  p.rejected_labels = rejected_labels.data_as<int32_t>();
  p.nll_labels = nll_labels.data_as<int32_t>();
  p.ignore_index = o.ignore_index;
  p.lambda = o.lambda;
  p.grad_scale = o.grad_scale;
  p.loss = r.loss.data();
  p.nll_loss = r.nll_loss.data();
  p.or_loss = r.or_loss.data();
  p.chosen_logps = r.chosen_logps.data();
  p.rejected_logps = r.rejected_logps.data();
  p.log_odds = r.log_odds.data();
  p.rewards_chosen = r.rewards_chosen.data();
  p.rewards_rejected = r.rewards_rejected.data();
  p.rewards_accuracy = r.rewards_accuracy.data();
  p.rewards_margin = r.rewards_margin.data();
  p.log_odds_ratio = r.log_odds_ratio.data();
  p.log_odds_chosen = r.log_odds_chosen.data();
  if (o.compute_grad) {
    p.grad_chosen = r.grad_chosen_logits->data();
    p.grad_rejected = r.grad_rejected_logits->data();
  }
  Tensor ws = workspace(kernels::orpo_workspace_bytes(p), device, fn);
  p.workspace = ws.data();

  std::vector<const Tensor*> outs = {&r.loss,           &r.nll_loss,         &r.or_loss,
                                     &r.chosen_logps,   &r.rejected_logps,   &r.log_odds,
                                     &r.rewards_chosen, &r.rewards_rejected, &r.rewards_accuracy,
                                     &r.rewards_margin, &r.log_odds_ratio,   &r.log_odds_chosen};
  if (o.compute_grad) {
    outs.push_back(&*r.grad_chosen_logits);
    outs.push_back(&*r.grad_rejected_logits);
  }
  std::vector<StoragePtr> outputs = storages(outs);
  uses.insert(uses.end(), outputs.begin(), outputs.end());
  uses.push_back(ws.storage);

  p.first_bad_chosen_label = bad_label_check(fn, "chosenLabels", chosen_labels, V, o.ignore_index, outputs);
  p.first_bad_rejected_label = bad_label_check(fn, "rejectedLabels", rejected_labels, V, o.ignore_index, outputs);
  p.first_bad_nll_label = bad_label_check(fn, "nllLabels", nll_labels, V, o.ignore_index, outputs);
  int64_t ignore_index = o.ignore_index;
  auto empty_check = [&](const char* arg, const Tensor& labels) {
    std::string arg_name = arg;
    Shape shape = labels.shape;
    return stream_for(device)
        .add_value_check(
            ErrorKind::Range,
            [=](int64_t b) {
              return concat("losses.orpo: ", arg_name, " has no supervised token (every label is ignoreIndex ",
                            ignore_index, ") in pair ", b, " (flat index ", b * shape[1], " of shape ",
                            shape_string(shape), " starts it)");
            },
            outputs)
        .first_bad_index;
  };
  p.first_empty_chosen = empty_check("chosenLabels", chosen_labels);
  p.first_empty_rejected = empty_check("rejectedLabels", rejected_labels);
  Stream& stream = stream_for(device);
  if (device.is_cpu()) {
    stream.enqueue(
        fn, [=] { kernels::orpo_cpu(p); }, uses, outputs);
  } else {
    [[maybe_unused]] void* s = stream_handle(device);
    stream.enqueue(
        fn, [=] { LMK_CUDA_CALL(kernels::orpo_cuda(p, s)); }, uses, outputs);
  }
  return r;
}

Tensor shift_labels(const Tensor& input_ids, int64_t ignore_index) {
  const char* fn = "losses.shiftLabels";
  check_int32(fn, "inputIds", input_ids);
  check_device_usable(input_ids.device(), fn, "inputIds");
  if (input_ids.shape.size() != 1 && input_ids.shape.size() != 2) {
    throw_range_error(fn, ": inputIds must have shape [B,T] or [N], got ", shape_string(input_ids.shape));
  }
  if (ignore_index < INT32_MIN || ignore_index > INT32_MAX) {
    throw_range_error(fn, ": ignoreIndex must fit in int32, got ", ignore_index);
  }
  const Device& device = input_ids.device();
  Tensor labels = empty(input_ids.shape, DType::Int32, device, fn);
  int64_t T = input_ids.shape.back();
  int64_t rows = T > 0 ? input_ids.numel() / T : 0;
  const int32_t* in = input_ids.data_as<int32_t>();
  int32_t* outp = labels.data_as<int32_t>();
  int32_t ignore = static_cast<int32_t>(ignore_index);
  Stream& stream = stream_for(device);
  if (device.is_cpu()) {
    stream.enqueue(fn, [=] { kernels::shift_labels_cpu(in, outp, rows, T, ignore); },
                   {input_ids.storage, labels.storage}, {labels.storage});
  } else {
    [[maybe_unused]] void* s = stream_handle(device);
    stream.enqueue(fn, [=] { LMK_CUDA_CALL(kernels::shift_labels_cuda(in, outp, rows, T, ignore, s)); },
                   {input_ids.storage, labels.storage}, {labels.storage});
  }
  return labels;
}

}  // namespace lmk::ops
