// Calls fn(TypeTag<T>{}) for the floating storage types of the dense kernels:
// float, bf16, f16, and double unless kWithDouble is false (CUDA kernels:
// float64 is CPU-only, so they are not instantiated for it). Other dtypes never
// reach a dense float kernel (the ops reject them) and map to float only to
// keep the switch total.
#pragma once
#include "runtime/dispatch.h"

namespace lmk::kernels {

template <bool kWithDouble = true, typename Fn>
void dispatch_float(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::Float64:
      if constexpr (kWithDouble) {
        fn(TypeTag<double>{});
        return;
      }
      break;
    case DType::BFloat16: fn(TypeTag<bf16>{}); return;
    case DType::Float16: fn(TypeTag<f16>{}); return;
    default: break;
  }
  fn(TypeTag<float>{});
}

}  // namespace lmk::kernels
