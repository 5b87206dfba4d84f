// Tensor handles, creation, conversion, transfer, read-back and memory.
#include <cstring>
#include <future>

#include "js_convert.h"
#include "ops/tensor_ops.h"
#include "runtime/storage.h"
#include "tensor_binding.h"
#include "tensor_handle.h"

namespace lmk::addon {

std::atomic<int64_t> live_tensor_handles{0};

void release_handle(Napi::Env env, TensorBox* box) {
  if (box->released) return;
  box->released = true;
  box->tensor = Tensor{};
  live_tensor_handles.fetch_sub(1);
  if (box->external_bytes) Napi::MemoryManagement::AdjustExternalMemory(env, -box->external_bytes);
  box->external_bytes = 0;
}

Napi::Object wrap_tensor(Napi::Env env, Tensor tensor) {
  auto* box = new TensorBox{std::move(tensor), false, 0};
  // Views (reshape) share storage and report nothing again.
  box->external_bytes = box->tensor.device().is_cpu() ? static_cast<int64_t>(box->tensor.nbytes()) : 0;
  if (box->external_bytes) Napi::MemoryManagement::AdjustExternalMemory(env, box->external_bytes);
  live_tensor_handles.fetch_add(1);
  auto handle = Napi::External<TensorBox>::New(env, box, [](Napi::Env finalize_env, TensorBox* b) {
    release_handle(finalize_env, b);
    delete b;
  });
  auto result = Napi::Object::New(env);
  result.Set("handle", handle);
  result.Set("shape", from_shape(env, box->tensor.shape));
  result.Set("dtype", dtype_name(box->tensor.dtype));
  result.Set("device", box->tensor.device().to_string());
  return result;
}

const Tensor& unwrap_tensor(const Napi::Value& value, const char* fn, const char* arg) {
  if (!value.IsExternal()) throw_type_error(fn, ": ", arg, " must be a Tensor");
  TensorBox* box = value.As<Napi::External<TensorBox>>().Data();
  if (box->released) throw_type_error(fn, ": ", arg, " tensor was disposed");
  return box->tensor;
}

std::optional<Tensor> unwrap_optional_tensor(const Napi::Value& value, const char* fn, const char* arg) {
  if (value.IsUndefined() || value.IsNull()) return std::nullopt;
  return unwrap_tensor(value, fn, arg);
}

namespace {

Napi::Value Release(const Napi::CallbackInfo& info) {
  if (info[0].IsExternal()) release_handle(info.Env(), info[0].As<Napi::External<TensorBox>>().Data());
  return info.Env().Undefined();
}

Napi::Value Empty(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    return wrap_tensor(info.Env(), ops::empty(to_shape(info[0]), to_dtype(info[1]), to_device(info[2])));
  });
}

Napi::Value Full(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    std::string fn = info[4].IsString() ? info[4].As<Napi::String>().Utf8Value() : "full";
    return wrap_tensor(info.Env(),
                       ops::full(to_shape(info[0]), to_number(info[1], "value"), to_dtype(info[2]), to_device(info[3]),
                                 fn == "zeros"  ? "zeros"
                                 : fn == "ones" ? "ones"
                                                : "full"));
  });
}

Napi::Value Arange(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    double n = to_number(info[0], "arange: n");
    if (!(n >= 0) || n != std::floor(n) || n > 9007199254740992.0) {
      throw_range_error("arange: n must be a non-negative integer, got ", n);
    }
    return wrap_tensor(info.Env(), ops::arange(static_cast<int64_t>(n), to_dtype(info[1]), to_device(info[2])));
  });
}

Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    auto seed = to_optional_seed(info[0]);
    if (!seed) throw_type_error("manualSeed: seed must be a non-negative integer");
    ops::manual_seed(*seed);
    return info.Env().Undefined();
  });
}

Napi::Value Rand(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    return wrap_tensor(info.Env(),
                       ops::rand(to_shape(info[0]), to_dtype(info[1]), to_device(info[2]), to_optional_seed(info[3]),
                                 to_number(info[4], "rand: low"), to_number(info[5], "rand: high")));
  });
}

Napi::Value Randn(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    return wrap_tensor(info.Env(),
                       ops::randn(to_shape(info[0]), to_dtype(info[1]), to_device(info[2]), to_optional_seed(info[3]),
                                  to_number(info[4], "randn: mean"), to_number(info[5], "randn: std")));
  });
}

// fromHost(typedArray: Float64Array | Float32Array | Int32Array, shape, dtype, device)
Napi::Value FromHost(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    if (!info[0].IsTypedArray()) throw_type_error("tensor: data must be a typed array");
    auto array = info[0].As<Napi::TypedArray>();
    DType host_dtype;
    switch (array.TypedArrayType()) {
      case napi_float64_array: host_dtype = DType::Float64; break;
      case napi_float32_array: host_dtype = DType::Float32; break;
      case napi_int32_array: host_dtype = DType::Int32; break;
      default: throw_type_error("tensor: data must be a Float64Array, Float32Array or Int32Array");
    }
    const uint8_t* bytes = static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
    return wrap_tensor(info.Env(), ops::from_host(bytes, host_dtype, static_cast<int64_t>(array.ElementLength()),
                                                  to_shape(info[1]), to_dtype(info[2]), to_device(info[3])));
  });
}

Napi::Value ToDtype(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    return wrap_tensor(info.Env(), ops::to_dtype(unwrap_tensor(info[0], "Tensor.to", "this"), to_dtype(info[1])));
  });
}

Napi::Value ToDevice(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    return wrap_tensor(info.Env(), ops::to_device(unwrap_tensor(info[0], "Tensor.to", "this"), to_device(info[1])));
  });
}

Napi::Value Clone(const Napi::CallbackInfo& info) {
  return guard(info.Env(),
               [&] { return wrap_tensor(info.Env(), ops::clone(unwrap_tensor(info[0], "Tensor.clone", "this"))); });
}

Napi::Value Reshape(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    return wrap_tensor(info.Env(), ops::reshape(unwrap_tensor(info[0], "Tensor.reshape", "this"), to_shape(info[1])));
  });
}

Napi::Value CheckIndices(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    double limit = to_number(info[1], "checkIndices: limit");
    return wrap_tensor(info.Env(), ops::check_indices(unwrap_tensor(info[0], "checkIndices", "values"),
                                                      static_cast<int64_t>(limit), "checkIndices", "values"));
  });
}

Napi::Value typed_array_from(Napi::Env env, DType host_dtype, const std::vector<uint8_t>& bytes) {
  auto buffer = Napi::ArrayBuffer::New(env, bytes.size());
  if (!bytes.empty()) std::memcpy(buffer.Data(), bytes.data(), bytes.size());
  size_t n = bytes.size() / dtype_size(host_dtype);
  switch (host_dtype) {
    case DType::Float64: return Napi::Float64Array::New(env, n, buffer, 0);
    case DType::Int32: return Napi::Int32Array::New(env, n, buffer, 0);
    default: return Napi::Float32Array::New(env, n, buffer, 0);
  }
}

// An async completion: the background thread hands its result to the JS
// thread through a thread-safe function, which settles the promise.
struct PendingRead {
  Napi::Promise::Deferred deferred;
  DType host_dtype;
  std::vector<uint8_t> bytes;
  std::optional<RecordedError> error;
  bool with_data;
};

void settle_on_js_thread(Napi::Env env, Napi::Function, std::nullptr_t*, PendingRead* pending) {
  if (env != nullptr) {
    Napi::HandleScope scope(env);
    if (pending->error) {
      pending->deferred.Reject(js_error(env, *pending->error).Value());
    } else if (pending->with_data) {
      pending->deferred.Resolve(typed_array_from(env, pending->host_dtype, pending->bytes));
    } else {
      pending->deferred.Resolve(env.Undefined());
    }
  }
  delete pending;
}

using SettleFunction = Napi::TypedThreadSafeFunction<std::nullptr_t, PendingRead, settle_on_js_thread>;

SettleFunction make_settler(Napi::Env env, const char* name) { return SettleFunction::New(env, name, 0, 1); }

Napi::Value Read(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const Tensor& t = unwrap_tensor(info[0], "Tensor.data", "this");
    auto deferred = Napi::Promise::Deferred::New(info.Env());
    Napi::Promise promise = deferred.Promise();
    auto settler = make_settler(info.Env(), "lmkernels.data");
    DType host_dtype = ops::host_read_dtype(t.dtype);
    auto* pending = new PendingRead{deferred, host_dtype, {}, std::nullopt, true};
    ops::read_to_host(
        t, [settler, pending](std::vector<uint8_t>&& bytes, const std::optional<RecordedError>& error) mutable {
          pending->bytes = std::move(bytes);
          pending->error = error;
          settler.BlockingCall(pending);
          settler.Release();
        });
    return promise;
  });
}

// The storage's raw bytes (a Uint8Array), for checkpoints that must keep
// bfloat16/float16 bit for bit.
Napi::Value ReadRaw(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const Tensor& t = unwrap_tensor(info[0], "readRaw", "tensor");
    std::vector<uint8_t> bytes = ops::read_to_host_blocking(t, true);
    auto buffer = Napi::ArrayBuffer::New(info.Env(), bytes.size());
    if (!bytes.empty()) std::memcpy(buffer.Data(), bytes.data(), bytes.size());
    return Napi::Uint8Array::New(info.Env(), bytes.size(), buffer, 0);
  });
}

// A tensor from raw little-endian bytes of its own dtype.
Napi::Value FromRaw(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      throw_type_error("fromRaw: bytes must be a Uint8Array");
    }
    auto bytes = info[0].As<Napi::Uint8Array>();
    DType dtype = to_dtype(info[2]);
    size_t size = dtype_size(dtype);
    if (bytes.ByteLength() % size != 0) {
      throw_range_error("fromRaw: ", bytes.ByteLength(), " bytes is not a whole number of ", dtype_name(dtype),
                        " elements");
    }
    const uint8_t* data = static_cast<const uint8_t*>(bytes.ArrayBuffer().Data()) + bytes.ByteOffset();
    return wrap_tensor(info.Env(), ops::from_host(data, dtype, static_cast<int64_t>(bytes.ByteLength() / size),
                                                  to_shape(info[1]), dtype, to_device(info[3])));
  });
}

Napi::Value ReadSync(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const Tensor& t = unwrap_tensor(info[0], "Tensor.dataSync", "this");
    DType host_dtype = ops::host_read_dtype(t.dtype);
    std::vector<uint8_t> bytes = ops::read_to_host_blocking(t);
    return typed_array_from(info.Env(), host_dtype, bytes);
  });
}

Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Device device = to_device(info[0]);
    auto deferred = Napi::Promise::Deferred::New(info.Env());
    Napi::Promise promise = deferred.Promise();
    auto settler = make_settler(info.Env(), "lmkernels.synchronize");
    auto* pending = new PendingRead{deferred, DType::Float32, {}, std::nullopt, false};
    ops::when_device_done(device, [settler, pending](const std::optional<RecordedError>& error) mutable {
      pending->error = error;
      settler.BlockingCall(pending);
      settler.Release();
    });
    return promise;
  });
}

Napi::Value Memory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto in_use = Napi::Object::New(env);
  auto reserved = Napi::Object::New(env);
  MemoryStats cpu = memory_stats(Device{DeviceKind::CPU, 0});
  in_use.Set("cpu", static_cast<double>(cpu.bytes_in_use));
  reserved.Set("cpu", static_cast<double>(cpu.bytes_reserved));
  const CudaInfo& cuda = cuda_info();
  auto cuda_in_use = Napi::Array::New(env), cuda_reserved = Napi::Array::New(env);
  if (cuda.available) {
    for (const auto& d : cuda.devices) {
      MemoryStats s = memory_stats(Device{DeviceKind::CUDA, d.index});
      cuda_in_use.Set(static_cast<uint32_t>(d.index), static_cast<double>(s.bytes_in_use));
      cuda_reserved.Set(static_cast<uint32_t>(d.index), static_cast<double>(s.bytes_reserved));
    }
  }
  in_use.Set("cuda", cuda_in_use);
  reserved.Set("cuda", cuda_reserved);
  auto result = Napi::Object::New(env);
  result.Set("tensors", static_cast<double>(live_tensor_handles.load()));
  result.Set("bytesInUse", in_use);
  result.Set("bytesReserved", reserved);
  return result;
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  empty_cache();
  return info.Env().Undefined();
}

}  // namespace

void register_tensor_bindings(Napi::Env env, Napi::Object exports) {
  exports.Set("release", Napi::Function::New(env, Release));
  exports.Set("empty", Napi::Function::New(env, Empty));
  exports.Set("full", Napi::Function::New(env, Full));
  exports.Set("arange", Napi::Function::New(env, Arange));
  exports.Set("manualSeed", Napi::Function::New(env, ManualSeed));
  exports.Set("rand", Napi::Function::New(env, Rand));
  exports.Set("randn", Napi::Function::New(env, Randn));
  exports.Set("fromHost", Napi::Function::New(env, FromHost));
  exports.Set("toDtype", Napi::Function::New(env, ToDtype));
  exports.Set("toDevice", Napi::Function::New(env, ToDevice));
  exports.Set("clone", Napi::Function::New(env, Clone));
  exports.Set("reshape", Napi::Function::New(env, Reshape));
  exports.Set("checkIndices", Napi::Function::New(env, CheckIndices));
  exports.Set("read", Napi::Function::New(env, Read));
  exports.Set("readSync", Napi::Function::New(env, ReadSync));
  exports.Set("readRaw", Napi::Function::New(env, ReadRaw));
  exports.Set("fromRaw", Napi::Function::New(env, FromRaw));
  exports.Set("synchronize", Napi::Function::New(env, Synchronize));
  exports.Set("memory", Napi::Function::New(env, Memory));
  exports.Set("emptyCache", Napi::Function::New(env, EmptyCache));
}

}  // namespace lmk::addon
