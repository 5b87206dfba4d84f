#include "ops/arg_checks.h"

#include <cmath>
#include <vector>

namespace lmk::ops {

void check_tensor(const Tensor& t, const char* fn, const char* arg) {
  if (!t.storage) throw_type_error(fn, ": ", arg, " must be a tensor, got one without storage (disposed or unset)");
}

void check_input(const Tensor& t, const char* fn, const char* arg) {
  check_tensor(t, fn, arg);
  check_device_usable(t.device(), fn, arg);
}

void check_float(const Tensor& t, const char* fn, const char* arg) {
  check_input(t, fn, arg);
  switch (t.dtype) {
    case DType::Float32:
    case DType::BFloat16:
    case DType::Float16: return;
    case DType::Float64:
      if (t.device().is_cuda()) {
        throw_type_error(fn, ": ", arg, " is float64, which is CPU-only, but lives on ", t.device().to_string());
      }
      return;
    default:
      throw_type_error(fn, ": ", arg, " must have dtype float32, bfloat16, float16 or float64, got ",
                       dtype_name(t.dtype));
  }
}

void check_int32_input(const Tensor& t, const char* fn, const char* arg) {
  check_input(t, fn, arg);
  check_dtype(t, DType::Int32, fn, arg, "");
}

void check_device(const Tensor& t, const Device& device, const char* fn, const char* arg, const char* like) {
  if (t.device() != device) {
    throw_type_error(fn, ": ", arg, " must be on the same device as ", like, " (", device.to_string(), "), got ",
                     t.device().to_string());
  }
}

void check_dtype(const Tensor& t, DType dtype, const char* fn, const char* arg, const std::string& why) {
  if (t.dtype != dtype) {
    throw_type_error(fn, ": ", arg, " must have dtype ", dtype_name(dtype), why.empty() ? "" : " ", why, ", got ",
                     dtype_name(t.dtype));
  }
}

void check_like(const Tensor& t, const Device& device, DType dtype, const char* fn, const char* arg, const char* like) {
  check_tensor(t, fn, arg);
  check_device(t, device, fn, arg, like);
  check_dtype(t, dtype, fn, arg, std::string("like ") + like);
}

void check_like(const Tensor& t, const Tensor& ref, const char* fn, const char* arg, const char* like) {
  check_like(t, ref.device(), ref.dtype, fn, arg, like);
}

void check_int32(const Tensor& t, const Device& device, const char* fn, const char* arg, const char* like) {
  check_tensor(t, fn, arg);
  check_dtype(t, DType::Int32, fn, arg, "");
  check_device(t, device, fn, arg, like);
}

void check_rank(const Tensor& t, size_t rank, const char* fn, const char* arg, const char* pattern) {
  if (t.shape.size() != rank) {
    throw_range_error(fn, ": ", arg, " must have shape ", pattern, ", got ", shape_string(t.shape));
  }
}

void check_shape(const Tensor& t, const Shape& expected, const char* fn, const char* arg, const char* pattern,
                 const std::string& why) {
  bool ok = t.shape.size() == expected.size();
  for (size_t i = 0; ok && i < expected.size(); ++i) ok = expected[i] < 0 || t.shape[i] == expected[i];
  if (ok) return;
  // The letters of the pattern's last bracket, e.g. B, Hkv, T, D of "[B,Hkv,T,D]",
  // name the sizes taken from t itself (-1 in `expected`).
  std::string text(pattern);
  size_t open = text.rfind('['), close = text.rfind(']');
  std::vector<std::string> letters;
  if (open != std::string::npos && close != std::string::npos && open < close) {
    std::string cur;
    for (char c : text.substr(open + 1, close - open - 1)) {
      if (c == ',') {
        letters.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
    letters.push_back(cur);
  }
  std::string rendered = "[";
  for (size_t i = 0; i < expected.size(); ++i) {
    if (i) rendered += ",";
    rendered += expected[i] < 0 && i < letters.size() ? letters[i] : std::to_string(expected[i]);
  }
  rendered += "]";
  throw_range_error(fn, ": ", arg, " must have shape ", pattern, " = ", rendered, why.empty() ? "" : " ", why, ", got ",
                    shape_string(t.shape));
}

int64_t normalize_dim(int64_t dim, int64_t rank, const char* fn, const char* arg) {
  if (dim < -rank || dim >= rank) {
    if (rank == 0) throw_range_error(fn, ": ", arg, " ", dim, " is out of range for a 0-d tensor");
    throw_range_error(fn, ": ", arg, " ", dim, " is out of range for a tensor of rank ", rank, " (expected [", -rank,
                      ", ", rank - 1, "])");
  }
  return dim < 0 ? dim + rank : dim;
}

void throw_unknown_name(const std::string& name, const std::vector<const char*>& names, const char* fn,
                        const char* arg) {
  std::string list;
  for (size_t i = 0; i < names.size(); ++i) list += concat(i ? ", '" : "'", names[i], "'");
  throw_range_error(fn, ": ", arg, " must be one of ", list, ", got '", name, "'");
}

std::string js_number(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  return concat(value);
}

void check_finite(double value, const char* fn, const char* arg) {
  if (!std::isfinite(value)) throw_range_error(fn, ": ", arg, " must be a finite number, got ", js_number(value));
}

void check_at_least(int64_t value, int64_t min, const char* fn, const char* arg) {
  if (value < min) throw_range_error(fn, ": ", arg, " must be an integer >= ", min, ", got ", value);
}

Tensor view(const Tensor& t, const Shape& shape) {
  Tensor v = t;
  v.shape = shape;
  return v;
}

}  // namespace lmk::ops
