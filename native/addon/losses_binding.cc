// losses.crossEntropy / goldfishMask / goldfishLoss / orpo / shiftLabels:
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

Napi::Value Orpo(const Napi::CallbackInfo& info) {
  Options o(info[0], "losses.orpo");
  ops::OrpoOptions options;
  options.nll_labels = o.optional_tensor("nllLabels");
  options.lambda = o.optional_number("lambda");
  options.ignore_index = o.optional_integer("ignoreIndex");
  if (auto goldfish = o.optional_options("goldfish")) options.goldfish = goldfish_options(*goldfish);
  options.compute_grad = o.optional_bool("computeGrad");
  options.grad_scale = o.optional_number("gradScale");
  ops::OrpoResult r = ops::orpo(o.tensor("chosenLogits"), o.tensor("rejectedLogits"), o.tensor("chosenLabels"),
                                o.tensor("rejectedLabels"), options);
  Napi::Env env = info.Env();
  Napi::Object out = tensors_object(env, {{"loss", r.loss},
                                          {"nllLoss", r.nll_loss},
                                          {"orLoss", r.or_loss},
                                          {"chosenLogps", r.chosen_logps},
                                          {"rejectedLogps", r.rejected_logps},
                                          {"logOdds", r.log_odds},
                                          {"gradChosenLogits", r.grad_chosen_logits},
                                          {"gradRejectedLogits", r.grad_rejected_logits}});
  out.Set("metrics", tensors_object(env, {{"rewardsChosen", r.rewards_chosen},
                                          {"rewardsRejected", r.rewards_rejected},
                                          {"rewardsAccuracy", r.rewards_accuracy},
                                          {"rewardsMargin", r.rewards_margin},
                                          {"logOddsRatio", r.log_odds_ratio},
                                          {"logOddsChosen", r.log_odds_chosen}}));
  return out;
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
                   {"lossesShiftLabels", ShiftLabels}});
}

}  // namespace lmk::addon
