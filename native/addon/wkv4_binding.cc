// wkv4.forward / backward / step: options object in, named tensors out.
#include "bindings.h"
#include "js_convert.h"
#include "ops/wkv4.h"

namespace lmk::addon {
namespace {

Napi::Value Wkv4Forward(const Napi::CallbackInfo& info) {
  Options o(info[0], "wkv4.forward");
  ops::Wkv4ForwardResult r = ops::wkv4_forward(
      {o.tensor("timeDecay"), o.tensor("timeFirst"), o.tensor("k"), o.tensor("v"), o.optional_tensor("state")});
  return tensors_object(info.Env(), {{"y", r.y}, {"state", r.state}});
}

Napi::Value Wkv4Backward(const Napi::CallbackInfo& info) {
  Options o(info[0], "wkv4.backward");
  ops::Wkv4BackwardResult r =
      ops::wkv4_backward({o.tensor("timeDecay"), o.tensor("timeFirst"), o.tensor("k"), o.tensor("v"),
                          o.optional_tensor("state"), o.tensor("y"), o.tensor("gy"), o.optional_tensor("gState")});
  return tensors_object(
      info.Env(),
      {{"gTimeDecay", r.gtime_decay}, {"gTimeFirst", r.gtime_first}, {"gk", r.gk}, {"gv", r.gv}, {"gState", r.gstate}});
}

Napi::Value Wkv4Step(const Napi::CallbackInfo& info) {
  Options o(info[0], "wkv4.step");
  ops::Wkv4StepResult r =
      ops::wkv4_step({o.tensor("timeDecay"), o.tensor("timeFirst"), o.tensor("k"), o.tensor("v"), o.tensor("state")});
  return tensors_object(info.Env(), {{"y", r.y}, {"state", r.state}});
}

}  // namespace

void register_wkv4_bindings(Napi::Env env, Napi::Object exports) {
  export_bindings(env, exports, {{"wkv4Forward", Wkv4Forward}, {"wkv4Backward", Wkv4Backward}, {"wkv4Step", Wkv4Step}});
}

}  // namespace lmk::addon
