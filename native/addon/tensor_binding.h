#pragma once
#include <napi.h>

namespace lmk::addon {
void register_tensor_bindings(Napi::Env env, Napi::Object exports);
}
