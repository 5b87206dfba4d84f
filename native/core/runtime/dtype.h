// Element types. bfloat16/float16 are storage types: kernels compute in float32.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace lmk {

enum class DType : int32_t { Float32 = 0, Float64 = 1, BFloat16 = 2, Float16 = 3, Int32 = 4 };

inline size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::Float64: return 8;
    case DType::BFloat16:
    case DType::Float16: return 2;
    default: return 4;
  }
}

inline const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::BFloat16: return "bfloat16";
    case DType::Float16: return "float16";
    case DType::Int32: return "int32";
  }
  return "unknown";
}

inline bool dtype_is_float(DType dtype) { return dtype != DType::Int32; }

// Parses a dtype name; returns false for an unknown name.
bool parse_dtype(const std::string& name, DType* out);

}  // namespace lmk
