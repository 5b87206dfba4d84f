// Translation between JS values and core types, and core errors to JS errors.
// No validation rules live here beyond "is this JS value the right kind".
#pragma once
#include <napi.h>

#include <cmath>
#include <optional>
#include <string>

#include "runtime/device.h"
#include "runtime/dtype.h"
#include "runtime/error.h"
#include "runtime/tensor.h"

namespace lmk::addon {

// Runs fn; turns lmk::Error into TypeError/RangeError/Error with its message.
template <typename Fn>
Napi::Value guard(Napi::Env env, Fn&& fn) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (const Error& e) {
    switch (e.kind()) {
      case ErrorKind::Type: throw Napi::TypeError::New(env, e.what());
      case ErrorKind::Range: throw Napi::RangeError::New(env, e.what());
      default: throw Napi::Error::New(env, e.what());
    }
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(env, "lmkernels: out of host memory");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

inline Napi::Error js_error(Napi::Env env, const RecordedError& error) {
  switch (error.kind) {
    case ErrorKind::Type: return Napi::TypeError::New(env, error.message);
    case ErrorKind::Range: return Napi::RangeError::New(env, error.message);
    default: return Napi::Error::New(env, error.message);
  }
}

inline DType to_dtype(const Napi::Value& v) {
  DType d;
  if (!v.IsString() || !parse_dtype(v.As<Napi::String>().Utf8Value(), &d)) {
    throw_type_error("dtype must be one of float32, float64, bfloat16, float16, int32");
  }
  return d;
}

inline Device to_device(const Napi::Value& v) {
  if (!v.IsString()) throw_type_error("device must be 'cpu', 'cuda' or 'cuda:N'");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s == "cpu") return Device{DeviceKind::CPU, 0};
  if (s == "cuda") return Device{DeviceKind::CUDA, 0};
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5 && s.find_first_not_of("0123456789", 5) == std::string::npos) {
    return Device{DeviceKind::CUDA, std::stoi(s.substr(5))};
  }
  throw_type_error("device must be 'cpu', 'cuda' or 'cuda:N', got '", s, "'");
}

inline Shape to_shape(const Napi::Value& v) {
  if (!v.IsArray()) throw_type_error("shape must be an array of integers");
  auto array = v.As<Napi::Array>();
  Shape shape;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value e = array.Get(i);
    double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : NAN;
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9007199254740992.0) {
      throw_type_error("shape must be an array of integers");
    }
    shape.push_back(static_cast<int64_t>(d));
  }
  return shape;
}

inline Napi::Array from_shape(Napi::Env env, const Shape& shape) {
  auto array = Napi::Array::New(env, shape.size());
  for (size_t i = 0; i < shape.size(); ++i) array.Set(static_cast<uint32_t>(i), static_cast<double>(shape[i]));
  return array;
}

inline double to_number(const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) throw_type_error(what, " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

inline std::optional<uint64_t> to_optional_seed(const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return std::nullopt;
  double d = to_number(v, "seed");
  if (!(d >= 0) || d != std::floor(d) || d > 9007199254740991.0) {
    throw_range_error("seed must be an integer in [0, 2^53), got ", d);
  }
  return static_cast<uint64_t>(d);
}

// A field of an options object (undefined when absent).
inline Napi::Value field(const Napi::Value& opts, const char* name) {
  if (!opts.IsObject()) throw_type_error("options must be an object");
  return opts.As<Napi::Object>().Get(name);
}

// A numeric field with a default when absent.
inline double number_field(const Napi::Value& opts, const char* name, const char* fn, double fallback) {
  Napi::Value v = field(opts, name);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) throw_type_error(fn, ": ", name, " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

}  // namespace lmk::addon
