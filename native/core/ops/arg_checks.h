// Argument checks shared by every op in core/ops (the one place where tensor
// arguments are validated: docs/architecture.md "Adding an op"). Each throws
// before any work is queued, naming the function and the argument, what was
// expected and what it got:
//   TypeError  a missing/disposed tensor, a wrong dtype, another device
//   RangeError a wrong shape, dim or option value
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "runtime/error.h"
#include "runtime/tensor.h"

namespace lmk::ops {

// A tensor with storage (not disposed or unset).
void check_tensor(const Tensor& t, const char* fn, const char* arg);

// The first tensor of a call that takes any dtype: present, on a usable device.
void check_input(const Tensor& t, const char* fn, const char* arg);

// The first floating tensor of a call: present, on a usable device, dtype
// float32 | bfloat16 | float16 | float64 (float64 on the CPU only).
void check_float(const Tensor& t, const char* fn, const char* arg);

// The first int32 tensor of a call (ids, labels): present, int32, on a usable device.
void check_int32_input(const Tensor& t, const char* fn, const char* arg);

// On `device`, the device of the argument named `like`.
void check_device(const Tensor& t, const Device& device, const char* fn, const char* arg, const char* like);

// dtype `dtype`; `why` (may be empty) says where the expectation comes from:
// "fn: arg must have dtype float32 <why>, got bfloat16".
void check_dtype(const Tensor& t, DType dtype, const char* fn, const char* arg, const std::string& why);

// Present, on `device` and of `dtype`, like the argument named `like`.
void check_like(const Tensor& t, const Device& device, DType dtype, const char* fn, const char* arg, const char* like);
// The same with the dtype and device of `ref`.
void check_like(const Tensor& t, const Tensor& ref, const char* fn, const char* arg, const char* like);

// Present, int32, on `device` (ids, positions, labels next to a float tensor).
void check_int32(const Tensor& t, const Device& device, const char* fn, const char* arg, const char* like);

// Rank `rank`: "fn: arg must have shape <pattern>, got [2,3]".
void check_rank(const Tensor& t, size_t rank, const char* fn, const char* arg, const char* pattern);

// Shape `expected`, where -1 is a size taken from t itself and shown by its
// letter in `pattern`: "fn: k must have shape [B,Hkv,T,D] = [1,Hkv,10,16]
// (B, T, D of q), got [1,2,10,8]". `why` may be empty.
void check_shape(const Tensor& t, const Shape& expected, const char* fn, const char* arg, const char* pattern,
                 const std::string& why = "");

// A dim in [-rank, rank) made non-negative; RangeError otherwise.
int64_t normalize_dim(int64_t dim, int64_t rank, const char* fn, const char* arg);

// A number as JavaScript prints it in a message: NaN, Infinity, -Infinity, 0.5.
std::string js_number(double value);

// A finite number (scale factors, gradScale, ...): RangeError for NaN or ±Infinity.
void check_finite(double value, const char* fn, const char* arg);

// An integer count or index option >= min: "fn: arg must be an integer >= min, got v".
void check_at_least(int64_t value, int64_t min, const char* fn, const char* arg);

// The value a name stands for, as the JS API spells the names of an option
// (op names, reductions, strategies...): RangeError naming fn/arg and listing
// them otherwise, "fn: arg must be one of 'mean', 'sum', 'none', got 'avg'".
[[noreturn]] void throw_unknown_name(const std::string& name, const std::vector<const char*>& names, const char* fn,
                                     const char* arg);
template <typename Value>
Value value_from_name(const std::string& name, std::initializer_list<std::pair<const char*, Value>> names,
                      const char* fn, const char* arg) {
  for (const auto& [spelling, value] : names) {
    if (name == spelling) return value;
  }
  std::vector<const char*> spellings;
  for (const auto& entry : names) spellings.push_back(entry.first);
  throw_unknown_name(name, spellings, fn, arg);
}

// float64 for float64 tensors, else float32 (statistics, norms, recurrent state).
inline DType accumulation_dtype(DType dtype) { return dtype == DType::Float64 ? DType::Float64 : DType::Float32; }

// A view of `t` with another shape (same element count, contiguous).
Tensor view(const Tensor& t, const Shape& shape);

}  // namespace lmk::ops
