// Each op family's binding file registers its functions with one line:
//   static lmk::addon::BindingRegistrar registrar(register_wkv4_bindings);
// and addon.cc installs every registered family into the module's exports.
#pragma once
#include <napi.h>

#include <vector>

namespace lmk::addon {

using RegisterBindings = void (*)(Napi::Env env, Napi::Object exports);

inline std::vector<RegisterBindings>& binding_registry() {
  static std::vector<RegisterBindings> registry;
  return registry;
}

struct BindingRegistrar {
  explicit BindingRegistrar(RegisterBindings fn) { binding_registry().push_back(fn); }
};

}  // namespace lmk::addon
