// The Node-API module: backend information plus the bindings of each op
// family. The addon only translates; validation and numerics live in core.
#include <napi.h>
#if defined(__unix__) || defined(__APPLE__)
#include <dlfcn.h>
#endif

#include <mutex>

#include "addon_state.h"
#include "bindings.h"
#include "js_convert.h"
#include "runtime/device.h"

#ifndef LMK_VERSION
#define LMK_VERSION "0.0.0"
#endif

namespace lmk::addon {
namespace {

// backendInfo() -> { version, cpu, cuda }
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

// The CPU stream, the thread pool and the CUDA completion threads are
// process-wide and outlive any one environment; Node unloads an addon when the
// last environment that loaded it goes (a worker that exits while the main
// thread never loaded it). Pin the library so their code stays mapped.
void keep_library_loaded() {
#if defined(RTLD_NODELETE)
  static std::once_flag once;
  std::call_once(once, [] {
    Dl_info self;
    if (dladdr(reinterpret_cast<void*>(&keep_library_loaded), &self) != 0 && self.dli_fname != nullptr) {
      dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
    }
  });
#endif
}

}  // namespace

// Runs once per environment that loads the addon (the main thread, each worker).
Napi::Object Init(Napi::Env env, Napi::Object exports) {
  keep_library_loaded();
  init_addon_state(env);
  export_bindings(env, exports, {{"backendInfo", BackendInfo}});
  register_tensor_bindings(env, exports);
  register_wkv4_bindings(env, exports);
  register_fam_bindings(env, exports);
  register_losses_bindings(env, exports);
  register_dense_bindings(env, exports);
  register_dist_bindings(env, exports);
  return exports;
}

}  // namespace lmk::addon

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return lmk::addon::Init(env, exports); }

NODE_API_MODULE(lmkernels, InitModule)
