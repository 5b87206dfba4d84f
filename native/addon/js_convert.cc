#include "js_convert.h"

#include <cmath>
#include <cstring>

#include "addon_state.h"
#include "ops/arg_checks.h"
#include "runtime/dtype.h"

namespace lmk::addon {
namespace {

constexpr double kMaxSafeInteger = 9007199254740992.0;  // 2^53: integers above are not exact

bool is_integer_value(double d) { return std::isfinite(d) && d == std::floor(d) && std::fabs(d) <= kMaxSafeInteger; }

}  // namespace

// ---- errors ----------------------------------------------------------------------

Napi::Error js_error(Napi::Env env, const RecordedError& error) {
  switch (error.kind) {
    case ErrorKind::Type: return Napi::TypeError::New(env, error.message);
    case ErrorKind::Range: return Napi::RangeError::New(env, error.message);
    default: return Napi::Error::New(env, error.message);
  }
}

void throw_js(const Napi::Error& error) {
  try {
    error.ThrowAsJavaScriptException();
  } catch (const Napi::Error&) {
    // The environment cannot run JS any more (a terminated worker).
  }
}

void export_bindings(Napi::Env env, Napi::Object exports, std::initializer_list<BindingEntry> entries) {
  for (const BindingEntry& entry : entries) {
    Binding fn = entry.fn;
    exports.Set(entry.name,
                Napi::Function::New(
                    env, [fn](const Napi::CallbackInfo& info) { return guard(info.Env(), [&] { return fn(info); }); },
                    entry.name));
  }
}

// ---- JS values to core arguments ---------------------------------------------------

std::string describe_js(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? "boolean true" : "boolean false";
  if (v.IsNumber()) return "number " + ops::js_number(v.As<Napi::Number>().DoubleValue());
  if (v.IsString()) return "string '" + v.As<Napi::String>().Utf8Value() + "'";
  if (v.IsArray()) return concat("array of length ", v.As<Napi::Array>().Length());
  if (v.IsTypedArray()) return "typed array";
  if (v.IsFunction()) return "function";
  return "object";
}

bool is_absent(const Napi::Value& v) { return v.IsUndefined() || v.IsNull(); }

double number_arg(const Napi::Value& v, const char* fn, const char* arg) {
  if (!v.IsNumber()) throw_type_error(fn, ": ", arg, " must be a number, got ", describe_js(v));
  return v.As<Napi::Number>().DoubleValue();
}

int64_t integer_arg(const Napi::Value& v, const char* fn, const char* arg) {
  if (!v.IsNumber()) throw_type_error(fn, ": ", arg, " must be an integer, got ", describe_js(v));
  double d = v.As<Napi::Number>().DoubleValue();
  if (!is_integer_value(d)) throw_range_error(fn, ": ", arg, " must be an integer, got ", ops::js_number(d));
  return static_cast<int64_t>(d);
}

bool bool_arg(const Napi::Value& v, const char* fn, const char* arg) {
  if (!v.IsBoolean()) throw_type_error(fn, ": ", arg, " must be a boolean, got ", describe_js(v));
  return v.As<Napi::Boolean>().Value();
}

std::string string_arg(const Napi::Value& v, const char* fn, const char* arg) {
  if (!v.IsString()) throw_type_error(fn, ": ", arg, " must be a string, got ", describe_js(v));
  return v.As<Napi::String>().Utf8Value();
}

std::vector<int64_t> integers_arg(const Napi::Value& v, const char* fn, const char* arg) {
  if (!v.IsArray()) throw_type_error(fn, ": ", arg, " must be an array of integers, got ", describe_js(v));
  auto array = v.As<Napi::Array>();
  std::vector<int64_t> out;
  out.reserve(array.Length());
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value e = array.Get(i);
    if (!e.IsNumber()) {
      throw_type_error(fn, ": ", arg, " must be an array of integers, got ", describe_js(e), " at index ", i);
    }
    double d = e.As<Napi::Number>().DoubleValue();
    if (!is_integer_value(d)) {
      throw_range_error(fn, ": ", arg, " must be an array of integers, got ", ops::js_number(d), " at index ", i);
    }
    out.push_back(static_cast<int64_t>(d));
  }
  return out;
}

const Tensor& tensor_arg(const Napi::Value& v, const char* fn, const char* arg) {
  if (!v.IsNumber()) throw_type_error(fn, ": ", arg, " must be a Tensor, got ", describe_js(v));
  const Tensor* tensor = addon_state(v.Env())->tensors.find(v.As<Napi::Number>().DoubleValue());
  if (tensor == nullptr) throw_type_error(fn, ": ", arg, " tensor was disposed");
  return *tensor;
}

std::vector<Tensor> tensors_arg(const Napi::Value& v, const char* fn, const char* arg) {
  if (!v.IsArray()) throw_type_error(fn, ": ", arg, " must be an array of Tensors, got ", describe_js(v));
  auto array = v.As<Napi::Array>();
  std::vector<Tensor> out;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    std::string element = concat(arg, "[", i, "]");
    out.push_back(tensor_arg(array.Get(i), fn, element.c_str()));
  }
  return out;
}

Options::Options(const Napi::Value& v, const char* fn) : fn_(fn) {
  if (!v.IsObject() || v.IsArray()) throw_type_error(fn, ": options must be an object, got ", describe_js(v));
  object_ = v.As<Napi::Object>();
}

std::optional<double> Options::optional_number(const char* name) const {
  return has(name) ? std::optional<double>(number(name)) : std::nullopt;
}
std::optional<int64_t> Options::optional_integer(const char* name) const {
  return has(name) ? std::optional<int64_t>(integer(name)) : std::nullopt;
}
std::optional<bool> Options::optional_bool(const char* name) const {
  return has(name) ? std::optional<bool>(boolean(name)) : std::nullopt;
}
std::optional<std::string> Options::optional_string(const char* name) const {
  return has(name) ? std::optional<std::string>(string(name)) : std::nullopt;
}
std::optional<std::vector<int64_t>> Options::optional_integers(const char* name) const {
  return has(name) ? std::optional<std::vector<int64_t>>(integers(name)) : std::nullopt;
}
std::optional<Tensor> Options::optional_tensor(const char* name) const {
  return has(name) ? std::optional<Tensor>(tensor(name)) : std::nullopt;
}
std::optional<Options> Options::optional_options(const char* name) const {
  if (!has(name)) return std::nullopt;
  Napi::Value v = get(name);
  if (!v.IsObject() || v.IsArray()) throw_type_error(fn_, ": ", name, " must be an object, got ", describe_js(v));
  return Options(v, fn_);
}

// ---- core results to JS ---------------------------------------------------------------

Napi::Value wrap_tensor(Napi::Env env, Tensor tensor) {
  return Napi::Number::New(env, addon_state(env)->tensors.add(env, std::move(tensor)));
}

Napi::Object tensors_object(Napi::Env env,
                            std::initializer_list<std::pair<const char*, std::optional<Tensor>>> entries) {
  auto out = Napi::Object::New(env);
  for (const auto& [name, tensor] : entries) {
    if (tensor) out.Set(name, wrap_tensor(env, *tensor));
  }
  return out;
}

Napi::Value new_typed_array(Napi::Env env, DType host_dtype, size_t n, void** data) {
  auto buffer = Napi::ArrayBuffer::New(env, n * dtype_size(host_dtype));
  *data = buffer.Data();
  switch (host_dtype) {
    case DType::Float64: return Napi::Float64Array::New(env, n, buffer, 0);
    case DType::Int32: return Napi::Int32Array::New(env, n, buffer, 0);
    default: return Napi::Float32Array::New(env, n, buffer, 0);
  }
}

Napi::Value typed_array_from(Napi::Env env, DType host_dtype, const std::vector<uint8_t>& bytes) {
  void* data = nullptr;
  Napi::Value array = new_typed_array(env, host_dtype, bytes.size() / dtype_size(host_dtype), &data);
  if (!bytes.empty()) std::memcpy(data, bytes.data(), bytes.size());
  return array;
}

Napi::Array from_shape(Napi::Env env, const Shape& shape) {
  auto array = Napi::Array::New(env, shape.size());
  for (size_t i = 0; i < shape.size(); ++i) array.Set(static_cast<uint32_t>(i), static_cast<double>(shape[i]));
  return array;
}

}  // namespace lmk::addon
