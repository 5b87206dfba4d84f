// The bindings of each op family, installed into the module's exports by
// addon.cc's init, once per Node environment (main thread or worker). A new
// family adds its register function here and one line to addon.cc.
#pragma once
#include <napi.h>

namespace lmk::addon {

void register_tensor_bindings(Napi::Env env, Napi::Object exports);
void register_wkv4_bindings(Napi::Env env, Napi::Object exports);
void register_fam_bindings(Napi::Env env, Napi::Object exports);
void register_losses_bindings(Napi::Env env, Napi::Object exports);
void register_dense_bindings(Napi::Env env, Napi::Object exports);
void register_dist_bindings(Napi::Env env, Napi::Object exports);

}  // namespace lmk::addon
