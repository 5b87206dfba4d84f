// A JS tensor handle: an External owning one reference to a core tensor.
// release() drops it at once (dispose); the External's finalizer drops it
// when the GC collects an undisposed tensor (the safety net). Made by
// wrap_tensor and read by tensor_arg (js_convert.h).
#pragma once
#include <napi.h>

#include <memory>

#include "addon_state.h"
#include "runtime/tensor.h"

namespace lmk::addon {

struct TensorBox {
  Tensor tensor;
  std::shared_ptr<AddonState> state;  // of the environment that made the handle
  bool released = false;
  int64_t external_bytes = 0;
};

// Drops the box's reference to its tensor (idempotent).
void release_handle(Napi::Env env, TensorBox* box);

}  // namespace lmk::addon
