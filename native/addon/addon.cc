// The Node-API module: backend information plus the bindings of each op
// family. The addon only translates; validation and numerics live in core.
#include <napi.h>

#include "binding_registry.h"
#include "js_convert.h"
#include "runtime/device.h"
#include "tensor_binding.h"

#ifndef LMK_VERSION
#define LMK_VERSION "0.0.0"
#endif

namespace lmk::addon {
namespace {

Napi::Value BackendInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto result = Napi::Object::New(env);
  result.Set("version", LMK_VERSION);
  auto cpu = Napi::Object::New(env);
  cpu.Set("threads", cpu_thread_count());
  result.Set("cpu", cpu);
  const CudaInfo& c = cuda_info();
  auto cuda = Napi::Object::New(env);
  cuda.Set("compiled", c.compiled);
  cuda.Set("available", c.available);
  if (!c.available) cuda.Set("reason", c.reason);
  if (c.compiled) {
    cuda.Set("runtimeVersion", c.runtime_version);
    cuda.Set("driverVersion", c.driver_version);
  }
  auto devices = Napi::Array::New(env, c.devices.size());
  for (size_t i = 0; i < c.devices.size(); ++i) {
    auto d = Napi::Object::New(env);
    d.Set("index", c.devices[i].index);
    d.Set("name", c.devices[i].name);
    d.Set("computeCapability", c.devices[i].compute_capability);
    d.Set("totalMemory", static_cast<double>(c.devices[i].total_memory));
    devices.Set(static_cast<uint32_t>(i), d);
  }
  cuda.Set("devices", devices);
  result.Set("cuda", cuda);
  return result;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("backendInfo", Napi::Function::New(env, BackendInfo));
  register_tensor_bindings(env, exports);
  for (RegisterBindings register_family : binding_registry()) register_family(env, exports);
  return exports;
}

}  // namespace lmk::addon

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return lmk::addon::Init(env, exports); }

NODE_API_MODULE(lmkernels, InitModule)
