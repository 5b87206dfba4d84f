// Calls fn(TypeTag<T>{}) for the floating storage types of the dense kernels:
// float, bf16, f16, and double unless kWithDouble is false (CUDA kernels:
// float64 is CPU-only, so they are not instantiated for it). Any other dtype
// (int32; float64 without kWithDouble) is a bug in the op that let it
// through: it throws an internal error (recorded on the stream under the
// op's name) instead of running the kernel on reinterpreted data.
#pragma once
#include "runtime/dispatch.h"
#include "runtime/error.h"

namespace lmk::kernels {

template <bool kWithDouble = true, typename Fn>
void dispatch_float(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::Float32: fn(TypeTag<float>{}); return;
    case DType::BFloat16: fn(TypeTag<bf16>{}); return;
    case DType::Float16: fn(TypeTag<f16>{}); return;
    case DType::Float64:
      if constexpr (kWithDouble) {
        fn(TypeTag<double>{});
        return;
      }
      break;
    case DType::Int32: break;
  }
  throw_runtime_error("internal error: a floating-point kernel", kWithDouble ? "" : " (CUDA)", " was called for dtype ",
                      dtype_name(dtype), "; the op must reject it");
}

}  // namespace lmk::kernels
