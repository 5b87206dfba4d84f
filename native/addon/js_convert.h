// The one set of accessors every binding uses: JS values to core arguments,
// core results and errors to JS. They check only what the JS value is (a
// number, a string, an array of integers, a tensor handle...), naming the
// function and the argument, and read undefined (or null) as "absent" for the
// core to replace by its default. Every semantic rule and every default lives
// in core/ops (docs/architecture.md "Adding an op").
#pragma once
#include <napi.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/error.h"
#include "runtime/tensor.h"

namespace lmk::addon {

// ---- errors --------------------------------------------------------------------

Napi::Error js_error(Napi::Env env, const RecordedError& error);

// Throws `error` as a JS exception. In an environment that is shutting down
// (a terminated worker) there is nobody to throw to, and nothing happens.
void throw_js(const Napi::Error& error);

// Runs a binding: lmk::Error becomes TypeError / RangeError / Error with its
// message, thrown as a JS exception; no C++ exception leaves.
template <typename Fn>
Napi::Value guard(Napi::Env env, Fn&& fn) {
  try {
    return fn();
  } catch (const Napi::Error& e) {
    throw_js(e);
  } catch (const Error& e) {
    throw_js(js_error(env, RecordedError{e.kind(), e.what()}));
  } catch (const std::bad_alloc&) {
    throw_js(js_error(env, RecordedError{ErrorKind::Runtime, "lmkernels: out of host memory"}));
  } catch (const std::exception& e) {
    throw_js(js_error(env, RecordedError{ErrorKind::Runtime, e.what()}));
  }
  return Napi::Value();
}

// The bindings of one family: each is wrapped in guard() when exported.
using Binding = Napi::Value (*)(const Napi::CallbackInfo& info);
struct BindingEntry {
  const char* name;
  Binding fn;
};
void export_bindings(Napi::Env env, Napi::Object exports, std::initializer_list<BindingEntry> entries);

// ---- JS values to core arguments -----------------------------------------------

// How a JS value reads in a message: "string 'x'", "undefined", "array of length 2".
std::string describe_js(const Napi::Value& v);

bool is_absent(const Napi::Value& v);  // undefined or null

// A number, NaN and ±Infinity included (TypeError otherwise).
double number_arg(const Napi::Value& v, const char* fn, const char* arg);
// A number with no fraction, |x| <= 2^53: TypeError for another JS type,
// RangeError for NaN, ±Infinity or a fraction.
int64_t integer_arg(const Napi::Value& v, const char* fn, const char* arg);
bool bool_arg(const Napi::Value& v, const char* fn, const char* arg);
std::string string_arg(const Napi::Value& v, const char* fn, const char* arg);
// An array of integers (shapes, dims), as integer_arg for each element.
std::vector<int64_t> integers_arg(const Napi::Value& v, const char* fn, const char* arg);
// The tensor behind a handle (TypeError when it is not one or was disposed).
// The reference stays valid while the handle is live.
const Tensor& tensor_arg(const Napi::Value& v, const char* fn, const char* arg);
std::vector<Tensor> tensors_arg(const Napi::Value& v, const char* fn, const char* arg);

// An options object, the one argument of most bindings: its fields through
// the accessors above, named by their option name.
class Options {
 public:
  Options(const Napi::Value& v, const char* fn);
  const char* fn() const { return fn_; }
  Napi::Value get(const char* name) const { return object_.Get(name); }
  bool has(const char* name) const { return !is_absent(get(name)); }

  double number(const char* name) const { return number_arg(get(name), fn_, name); }
  int64_t integer(const char* name) const { return integer_arg(get(name), fn_, name); }
  bool boolean(const char* name) const { return bool_arg(get(name), fn_, name); }
  std::string string(const char* name) const { return string_arg(get(name), fn_, name); }
  std::vector<int64_t> integers(const char* name) const { return integers_arg(get(name), fn_, name); }
  const Tensor& tensor(const char* name) const { return tensor_arg(get(name), fn_, name); }
  std::vector<Tensor> tensors(const char* name) const { return tensors_arg(get(name), fn_, name); }

  std::optional<double> optional_number(const char* name) const;
  std::optional<int64_t> optional_integer(const char* name) const;
  std::optional<bool> optional_bool(const char* name) const;
  std::optional<std::string> optional_string(const char* name) const;
  std::optional<std::vector<int64_t>> optional_integers(const char* name) const;
  std::optional<Tensor> optional_tensor(const char* name) const;
  std::optional<Options> optional_options(const char* name) const;

 private:
  Napi::Object object_;
  const char* fn_;
};

// ---- core results to JS ----------------------------------------------------------

// A new handle on `tensor` (tensor_handle.h): what the TS Tensor wraps.
Napi::Value wrap_tensor(Napi::Env env, Tensor tensor);
// An object of wrapped tensors by name; absent ones are left out.
Napi::Object tensors_object(Napi::Env env,
                            std::initializer_list<std::pair<const char*, std::optional<Tensor>>> entries);
// Host bytes of `host_dtype` (float32, float64 or int32) as a new typed array.
Napi::Value typed_array_from(Napi::Env env, DType host_dtype, const std::vector<uint8_t>& bytes);
// A new Float32/Float64/Int32Array (host_dtype) of n elements; *data: its bytes.
Napi::Value new_typed_array(Napi::Env env, DType host_dtype, size_t n, void** data);
Napi::Array from_shape(Napi::Env env, const Shape& shape);

}  // namespace lmk::addon
