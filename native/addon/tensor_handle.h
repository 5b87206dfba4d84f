// A JS tensor handle: an External owning one reference to a core tensor.
// release() drops it at once (dispose); the External's finalizer drops it
// when the GC collects an undisposed tensor (the safety net).
#pragma once
#include <napi.h>

#include <atomic>

#include "runtime/tensor.h"

namespace lmk::addon {

struct TensorBox {
  Tensor tensor;
  bool released = false;
  int64_t external_bytes = 0;
};

extern std::atomic<int64_t> live_tensor_handles;

// {handle, shape, dtype, device}: what the TS Tensor wraps.
Napi::Object wrap_tensor(Napi::Env env, Tensor tensor);

// The tensor behind a handle; TypeError naming fn/arg when it is not one or
// has been disposed.
const Tensor& unwrap_tensor(const Napi::Value& value, const char* fn, const char* arg);

// Same, for optional arguments: undefined/null -> nullopt.
std::optional<Tensor> unwrap_optional_tensor(const Napi::Value& value, const char* fn, const char* arg);

void release_handle(Napi::Env env, TensorBox* box);

}  // namespace lmk::addon
