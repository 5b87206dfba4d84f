// losses.crossEntropy / goldfishMask / goldfishLoss / orpo / shiftLabels /
// linearCrossEntropy / linearOrpo:
// one options object in, named tensors out. Only translation here; every
// rule and default lives in ops/losses.cc.
#include "bindings.h"
#include "js_convert.h"
#include "ops/losses.h"

namespace lmk::addon {
namespace {

ops::GoldfishOptions goldfish_options(const Options& o) {
  ops::GoldfishOptions g;
  g.k = o.optional_integer("k");
  if (auto strategy = o.optional_string("strategy")) g.strategy = ops::goldfish_strategy_from_name(*strategy, o.fn());
  g.context_width = o.optional_integer("contextWidth");
  g.seed = o.optional_integer("seed");
  g.start_position = o.optional_integer("startPosition");
  g.hash_tokens = o.optional_tensor("hashTokens");
  return g;
}

Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  Options o(info[0], "losses.crossEntropy");
  std::optional<ops::LossReduction> reduction;
  if (auto name = o.optional_string("reduction")) reduction = ops::loss_reduction_from_name(*name, o.fn());
  ops::CrossEntropyResult r =
      ops::cross_entropy(o.tensor("logits"), o.tensor("labels"), o.optional_integer("ignoreIndex"), reduction,
                         o.optional_tensor("weights"), o.optional_bool("computeGrad"), o.optional_number("gradScale"));
  return tensors_object(info.Env(), {{"loss", r.loss}, {"lse", r.lse}, {"gradLogits", r.grad_logits}});
}

Napi::Value GoldfishMask(const Napi::CallbackInfo& info) {
  Options o(info[0], "losses.goldfishMask");
  return wrap_tensor(info.Env(),
                     ops::goldfish_mask(o.tensor("labels"), o.optional_integer("ignoreIndex"), goldfish_options(o)));
}

Napi::Value GoldfishLoss(const Napi::CallbackInfo& info) {
  Options o(info[0], "losses.goldfishLoss");
  ops::GoldfishLossResult r =
      ops::goldfish_loss(o.tensor("logits"), o.tensor("labels"), o.optional_integer("ignoreIndex"), goldfish_options(o),
                         o.optional_bool("computeGrad"), o.optional_number("gradScale"));
  return tensors_object(info.Env(), {{"loss", r.loss},
                                     {"gradLogits", r.grad_logits},
                                     {"lossAllTokens", r.loss_all_tokens},
                                     {"lossDroppedTokens", r.loss_dropped_tokens},
                                     {"supervisedTokens", r.supervised_tokens},
                                     {"keptTokens", r.kept_tokens}});
}

// The options losses.orpo and losses.linearOrpo share.
void read_orpo_options(const Options& o, ops::OrpoOptions* options) {
  options->nll_labels = o.optional_tensor("nllLabels");
  options->lambda = o.optional_number("lambda");
  options->ignore_index = o.optional_integer("ignoreIndex");
  if (auto goldfish = o.optional_options("goldfish")) options->goldfish = goldfish_options(*goldfish);
  options->compute_grad = o.optional_bool("computeGrad");
  options->grad_scale = o.optional_number("gradScale");
}

// losses.orpo's results, with `grads` (the gradients' names and tensors) added.
Napi::Object orpo_object(Napi::Env env, const ops::OrpoResult& r,
                         std::initializer_list<std::pair<const char*, std::optional<Tensor>>> grads) {
  Napi::Object out = tensors_object(env, {{"loss", r.loss},
                                          {"nllLoss", r.nll_loss},
                                          {"orLoss", r.or_loss},
                                          {"chosenLogps", r.chosen_logps},
                                          {"rejectedLogps", r.rejected_logps},
                                          {"logOdds", r.log_odds}});
  for (const auto& [name, grad] : grads) {
    if (grad) out.Set(name, wrap_tensor(env, *grad));
  }
  out.Set("metrics", tensors_object(env, {{"rewardsChosen", r.rewards_chosen},
                                          {"rewardsRejected", r.rewards_rejected},
                                          {"rewardsAccuracy", r.rewards_accuracy},
                                          {"rewardsMargin", r.rewards_margin},
                                          {"logOddsRatio", r.log_odds_ratio},
                                          {"logOddsChosen", r.log_odds_chosen}}));
  return out;
}

Napi::Value Orpo(const Napi::CallbackInfo& info) {
  Options o(info[0], "losses.orpo");
  ops::OrpoOptions options;
  read_orpo_options(o, &options);
  ops::OrpoResult r = ops::orpo(o.tensor("chosenLogits"), o.tensor("rejectedLogits"), o.tensor("chosenLabels"),
                                o.tensor("rejectedLabels"), options);
  return orpo_object(info.Env(), r,
                     {{"gradChosenLogits", r.grad_chosen_logits}, {"gradRejectedLogits", r.grad_rejected_logits}});
}

Napi::Value LinearCrossEntropy(const Napi::CallbackInfo& info) {
  Options o(info[0], "losses.linearCrossEntropy");
  ops::LinearCrossEntropyOptions options;
  options.bias = o.optional_tensor("bias");
  options.ignore_index = o.optional_integer("ignoreIndex");
  if (auto name = o.optional_string("reduction")) options.reduction = ops::loss_reduction_from_name(*name, o.fn());
  options.weights = o.optional_tensor("weights");
  if (auto goldfish = o.optional_options("goldfish")) options.goldfish = goldfish_options(*goldfish);
  options.compute_grad = o.optional_bool("computeGrad");
  options.grad_scale = o.optional_number("gradScale");
  options.chunk_size = o.optional_integer("chunkSize");
  ops::LinearCrossEntropyResult r =
      ops::linear_cross_entropy(o.tensor("hidden"), o.tensor("weight"), o.tensor("labels"), options);
  return tensors_object(info.Env(), {{"loss", r.loss},
                                     {"lse", r.lse},
                                     {"gradHidden", r.grad_hidden},
                                     {"gradWeight", r.grad_weight},
                                     {"gradBias", r.grad_bias},
                                     {"lossAllTokens", r.loss_all_tokens},
                                     {"lossDroppedTokens", r.loss_dropped_tokens},
                                     {"supervisedTokens", r.supervised_tokens},
                                     {"keptTokens", r.kept_tokens}});
}

Napi::Value LinearOrpo(const Napi::CallbackInfo& info) {
  Options o(info[0], "losses.linearOrpo");
  ops::LinearOrpoOptions options;
  read_orpo_options(o, &options);
  options.bias = o.optional_tensor("bias");
  options.chunk_size = o.optional_integer("chunkSize");
  ops::LinearOrpoResult r = ops::linear_orpo(o.tensor("chosenHidden"), o.tensor("rejectedHidden"), o.tensor("weight"),
                                             o.tensor("chosenLabels"), o.tensor("rejectedLabels"), options);
  return orpo_object(info.Env(), r.orpo,
                     {{"gradChosenHidden", r.grad_chosen_hidden},
                      {"gradRejectedHidden", r.grad_rejected_hidden},
                      {"gradWeight", r.grad_weight},
                      {"gradBias", r.grad_bias}});
}

Napi::Value ShiftLabels(const Napi::CallbackInfo& info) {
  Options o(info[0], "losses.shiftLabels");
  return wrap_tensor(info.Env(), ops::shift_labels(o.tensor("inputIds"), o.optional_integer("ignoreIndex")));
}

}  // namespace

void register_losses_bindings(Napi::Env env, Napi::Object exports) {
  export_bindings(env, exports,
                  {{"lossesCrossEntropy", CrossEntropy},
                   {"lossesGoldfishMask", GoldfishMask},
                   {"lossesGoldfishLoss", GoldfishLoss},
                   {"lossesOrpo", Orpo},
                   {"lossesShiftLabels", ShiftLabels},
                   {"lossesLinearCrossEntropy", LinearCrossEntropy},
                   {"lossesLinearOrpo", LinearOrpo}});
}

}  // namespace lmk::addon
