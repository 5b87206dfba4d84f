// losses.crossEntropy / goldfishMask / goldfishLoss / orpo / shiftLabels:
// one options object in, named tensors out. Only translation here: JS values
// to core arguments (a non-integer where an integer is expected is a
// RangeError, a wrong JS type a TypeError); every rule lives in ops/losses.cc.
#include <cmath>
#include <string>

#include "binding_registry.h"
#include "js_convert.h"
#include "ops/losses.h"
#include "tensor_handle.h"

namespace lmk::addon {
namespace {

int64_t integer_field(const Napi::Value& o, const char* name, const char* fn, int64_t fallback) {
  double v = number_field(o, name, fn, static_cast<double>(fallback));
  if (!std::isfinite(v) || v != std::floor(v) || std::fabs(v) > 9007199254740991.0) {
    throw_range_error(fn, ": ", name, " must be an integer, got ", v);
  }
  return static_cast<int64_t>(v);
}

bool bool_field(const Napi::Value& o, const char* name, const char* fn, bool fallback) {
  Napi::Value v = field(o, name);
  if (v.IsUndefined()) return fallback;
  if (!v.IsBoolean()) throw_type_error(fn, ": ", name, " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string string_field(const Napi::Value& o, const char* name, const char* fn, const char* fallback) {
  Napi::Value v = field(o, name);
  if (v.IsUndefined()) return fallback;
  if (!v.IsString()) throw_type_error(fn, ": ", name, " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

ops::GoldfishOptions goldfish_options(const Napi::Value& o, const char* fn) {
  ops::GoldfishOptions g;
  g.k = integer_field(o, "k", fn, 4);
  std::string strategy = string_field(o, "strategy", fn, "hash");
  if (strategy == "hash") {
    g.strategy = ops::GoldfishStrategyOption::Hash;
  } else if (strategy == "static") {
    g.strategy = ops::GoldfishStrategyOption::Static;
  } else if (strategy == "random") {
    g.strategy = ops::GoldfishStrategyOption::Random;
  } else {
    throw_range_error(fn, ": strategy must be 'hash', 'static' or 'random', got '", strategy, "'");
  }
  g.context_width = integer_field(o, "contextWidth", fn, 13);
  int64_t seed = integer_field(o, "seed", fn, 0);
  if (seed < 0) throw_range_error(fn, ": seed must be an integer in [0, 2^53), got ", seed);
  g.seed = static_cast<uint64_t>(seed);
  g.start_position = integer_field(o, "startPosition", fn, 0);
  g.hash_tokens = unwrap_optional_tensor(field(o, "hashTokens"), fn, "hashTokens");
  return g;
}

Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const char* fn = "losses.crossEntropy";
    Napi::Value o = info[0];
    std::string reduction = string_field(o, "reduction", fn, "mean");
    ops::LossReduction r = ops::LossReduction::Mean;
    if (reduction == "sum") {
      r = ops::LossReduction::Sum;
    } else if (reduction == "none") {
      r = ops::LossReduction::None;
    } else if (reduction != "mean") {
      throw_range_error(fn, ": reduction must be 'mean', 'sum' or 'none', got '", reduction, "'");
    }
    ops::CrossEntropyResult result = ops::cross_entropy(
        unwrap_tensor(field(o, "logits"), fn, "logits"), unwrap_tensor(field(o, "labels"), fn, "labels"),
        integer_field(o, "ignoreIndex", fn, -100), r, unwrap_optional_tensor(field(o, "weights"), fn, "weights"),
        bool_field(o, "computeGrad", fn, true), number_field(o, "gradScale", fn, 1.0));
    auto out = Napi::Object::New(info.Env());
    out.Set("loss", wrap_tensor(info.Env(), result.loss));
    out.Set("lse", wrap_tensor(info.Env(), result.lse));
    if (result.grad_logits) out.Set("gradLogits", wrap_tensor(info.Env(), *result.grad_logits));
    return out;
  });
}

Napi::Value GoldfishMask(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const char* fn = "losses.goldfishMask";
    Napi::Value o = info[0];
    Tensor mask = ops::goldfish_mask(unwrap_tensor(field(o, "labels"), fn, "labels"),
                                     integer_field(o, "ignoreIndex", fn, -100), goldfish_options(o, fn));
    return wrap_tensor(info.Env(), mask);
  });
}

Napi::Value GoldfishLoss(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const char* fn = "losses.goldfishLoss";
    Napi::Value o = info[0];
    ops::GoldfishLossResult r = ops::goldfish_loss(
        unwrap_tensor(field(o, "logits"), fn, "logits"), unwrap_tensor(field(o, "labels"), fn, "labels"),
        integer_field(o, "ignoreIndex", fn, -100), goldfish_options(o, fn), bool_field(o, "computeGrad", fn, true),
        number_field(o, "gradScale", fn, 1.0));
    Napi::Env env = info.Env();
    auto out = Napi::Object::New(env);
    out.Set("loss", wrap_tensor(env, r.loss));
    if (r.grad_logits) out.Set("gradLogits", wrap_tensor(env, *r.grad_logits));
    out.Set("lossAllTokens", wrap_tensor(env, r.loss_all_tokens));
    out.Set("lossDroppedTokens", wrap_tensor(env, r.loss_dropped_tokens));
    out.Set("supervisedTokens", wrap_tensor(env, r.supervised_tokens));
    out.Set("keptTokens", wrap_tensor(env, r.kept_tokens));
    return out;
  });
}

Napi::Value Orpo(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const char* fn = "losses.orpo";
    Napi::Value o = info[0];
    ops::OrpoOptions options;
    options.nll_labels = unwrap_optional_tensor(field(o, "nllLabels"), fn, "nllLabels");
    options.lambda = number_field(o, "lambda", fn, 0.1);
    options.ignore_index = integer_field(o, "ignoreIndex", fn, -100);
    Napi::Value goldfish = field(o, "goldfish");
    if (!goldfish.IsUndefined() && !goldfish.IsNull()) {
      if (!goldfish.IsObject()) throw_type_error(fn, ": goldfish must be an object");
      options.goldfish = goldfish_options(goldfish, fn);
    }
    options.compute_grad = bool_field(o, "computeGrad", fn, true);
    options.grad_scale = number_field(o, "gradScale", fn, 1.0);
    ops::OrpoResult r = ops::orpo(unwrap_tensor(field(o, "chosenLogits"), fn, "chosenLogits"),
                                  unwrap_tensor(field(o, "rejectedLogits"), fn, "rejectedLogits"),
                                  unwrap_tensor(field(o, "chosenLabels"), fn, "chosenLabels"),
                                  unwrap_tensor(field(o, "rejectedLabels"), fn, "rejectedLabels"), options);
    Napi::Env env = info.Env();
    auto out = Napi::Object::New(env);
    out.Set("loss", wrap_tensor(env, r.loss));
    out.Set("nllLoss", wrap_tensor(env, r.nll_loss));
    out.Set("orLoss", wrap_tensor(env, r.or_loss));
    out.Set("chosenLogps", wrap_tensor(env, r.chosen_logps));
    out.Set("rejectedLogps", wrap_tensor(env, r.rejected_logps));
    out.Set("logOdds", wrap_tensor(env, r.log_odds));
    auto metrics = Napi::Object::New(env);
    metrics.Set("rewardsChosen", wrap_tensor(env, r.rewards_chosen));
    metrics.Set("rewardsRejected", wrap_tensor(env, r.rewards_rejected));
    metrics.Set("rewardsAccuracy", wrap_tensor(env, r.rewards_accuracy));
    metrics.Set("rewardsMargin", wrap_tensor(env, r.rewards_margin));
    metrics.Set("logOddsRatio", wrap_tensor(env, r.log_odds_ratio));
    metrics.Set("logOddsChosen", wrap_tensor(env, r.log_odds_chosen));
    out.Set("metrics", metrics);
    if (r.grad_chosen_logits) out.Set("gradChosenLogits", wrap_tensor(env, *r.grad_chosen_logits));
    if (r.grad_rejected_logits) out.Set("gradRejectedLogits", wrap_tensor(env, *r.grad_rejected_logits));
    return out;
  });
}

Napi::Value ShiftLabels(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const char* fn = "losses.shiftLabels";
    Napi::Value o = info[0];
    return wrap_tensor(info.Env(), ops::shift_labels(unwrap_tensor(field(o, "inputIds"), fn, "inputIds"),
                                                     integer_field(o, "ignoreIndex", fn, -100)));
  });
}

void register_losses_bindings(Napi::Env env, Napi::Object exports) {
  exports.Set("lossesCrossEntropy", Napi::Function::New(env, CrossEntropy));
  exports.Set("lossesGoldfishMask", Napi::Function::New(env, GoldfishMask));
  exports.Set("lossesGoldfishLoss", Napi::Function::New(env, GoldfishLoss));
  exports.Set("lossesOrpo", Napi::Function::New(env, Orpo));
  exports.Set("lossesShiftLabels", Napi::Function::New(env, ShiftLabels));
}

BindingRegistrar registrar(register_losses_bindings);

}  // namespace
}  // namespace lmk::addon
