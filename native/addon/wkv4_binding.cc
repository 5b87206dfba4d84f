// wkv4.forward / backward / step: options object in, named tensors out.
#include "binding_registry.h"
#include "js_convert.h"
#include "ops/wkv4.h"
#include "tensor_handle.h"

namespace lmk::addon {
namespace {

Napi::Value Wkv4Forward(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const char* fn = "wkv4.forward";
    Napi::Value o = info[0];
    ops::Wkv4ForwardArgs args{unwrap_tensor(field(o, "timeDecay"), fn, "timeDecay"),
                              unwrap_tensor(field(o, "timeFirst"), fn, "timeFirst"),
                              unwrap_tensor(field(o, "k"), fn, "k"), unwrap_tensor(field(o, "v"), fn, "v"),
                              unwrap_optional_tensor(field(o, "state"), fn, "state")};
    ops::Wkv4ForwardResult r = ops::wkv4_forward(args);
    auto out = Napi::Object::New(info.Env());
    out.Set("y", wrap_tensor(info.Env(), r.y));
    out.Set("state", wrap_tensor(info.Env(), r.state));
    return out;
  });
}

Napi::Value Wkv4Backward(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const char* fn = "wkv4.backward";
    Napi::Value o = info[0];
    ops::Wkv4BackwardArgs args{unwrap_tensor(field(o, "timeDecay"), fn, "timeDecay"),
                               unwrap_tensor(field(o, "timeFirst"), fn, "timeFirst"),
                               unwrap_tensor(field(o, "k"), fn, "k"),
                               unwrap_tensor(field(o, "v"), fn, "v"),
                               unwrap_optional_tensor(field(o, "state"), fn, "state"),
                               unwrap_tensor(field(o, "y"), fn, "y"),
                               unwrap_tensor(field(o, "gy"), fn, "gy"),
                               unwrap_optional_tensor(field(o, "gState"), fn, "gState")};
    ops::Wkv4BackwardResult r = ops::wkv4_backward(args);
    auto out = Napi::Object::New(info.Env());
    out.Set("gTimeDecay", wrap_tensor(info.Env(), r.gtime_decay));
    out.Set("gTimeFirst", wrap_tensor(info.Env(), r.gtime_first));
    out.Set("gk", wrap_tensor(info.Env(), r.gk));
    out.Set("gv", wrap_tensor(info.Env(), r.gv));
    if (r.gstate) out.Set("gState", wrap_tensor(info.Env(), *r.gstate));
    return out;
  });
}

Napi::Value Wkv4Step(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const char* fn = "wkv4.step";
    Napi::Value o = info[0];
    ops::Wkv4StepArgs args{unwrap_tensor(field(o, "timeDecay"), fn, "timeDecay"),
                           unwrap_tensor(field(o, "timeFirst"), fn, "timeFirst"), unwrap_tensor(field(o, "k"), fn, "k"),
                           unwrap_tensor(field(o, "v"), fn, "v"), unwrap_tensor(field(o, "state"), fn, "state")};
    ops::Wkv4StepResult r = ops::wkv4_step(args);
    auto out = Napi::Object::New(info.Env());
    out.Set("y", wrap_tensor(info.Env(), r.y));
    out.Set("state", wrap_tensor(info.Env(), r.state));
    return out;
  });
}

void register_wkv4_bindings(Napi::Env env, Napi::Object exports) {
  exports.Set("wkv4Forward", Napi::Function::New(env, Wkv4Forward));
  exports.Set("wkv4Backward", Napi::Function::New(env, Wkv4Backward));
  exports.Set("wkv4Step", Napi::Function::New(env, Wkv4Step));
}

BindingRegistrar registrar(register_wkv4_bindings);

}  // namespace
}  // namespace lmk::addon
