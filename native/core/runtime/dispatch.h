// Calls fn(TypeTag<T>{}) with the C++ element type of a dtype.
#pragma once
#include <cstdint>

#include "math/half.h"
#include "runtime/dtype.h"

namespace lmk {

template <typename T>
struct TypeTag {
  using type = T;
};

template <typename Fn>
void dispatch_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::Float32: fn(TypeTag<float>{}); break;
    case DType::Float64: fn(TypeTag<double>{}); break;
    case DType::BFloat16: fn(TypeTag<bf16>{}); break;
    case DType::Float16: fn(TypeTag<f16>{}); break;
    case DType::Int32: fn(TypeTag<int32_t>{}); break;
  }
}

}  // namespace lmk
