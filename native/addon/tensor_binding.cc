// Tensor handles, creation, conversion, transfer, read-back and memory.
#include <cstring>

#include "addon_state.h"
#include "bindings.h"
#include "js_convert.h"
#include "ops/tensor_ops.h"
#include "runtime/storage.h"

namespace lmk::addon {

namespace {

// release(handle): drops the handle's reference (dispose, or the GC's
// FinalizationRegistry); a released or unknown handle is ignored.
Napi::Value Release(const Napi::CallbackInfo& info) {
  if (info[0].IsNumber())
    addon_state(info.Env())->tensors.release(info.Env(), info[0].As<Napi::Number>().DoubleValue());
  return info.Env().Undefined();
}

// tensorMeta() -> { table, stride, dims, dtypes }: the metadata array of this
// environment's handles (tensor_handle.h) and the dtype names by value.
Napi::Value TensorMeta(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto result = Napi::Object::New(env);
  result.Set("table", addon_state(env)->tensors.meta_buffer(env));
  result.Set("stride", TensorTable::kMetaStride);
  result.Set("dims", TensorTable::kMetaDims);
  const DType dtypes[] = {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16, DType::Int32};
  auto names = Napi::Array::New(env);
  for (DType d : dtypes) names.Set(static_cast<uint32_t>(d), dtype_name(d));
  result.Set("dtypes", names);
  return result;
}

// tensorShape(handle) -> number[]: for a rank beyond the metadata array's.
Napi::Value TensorShape(const Napi::CallbackInfo& info) {
  return from_shape(info.Env(), tensor_arg(info[0], "tensorShape", "handle").shape);
}

// The device and dtype of a creation call.
Device creation_device(const Options& o) { return ops::device_from_name(o.string("device"), o.fn()); }
DType creation_dtype(const Options& o) { return ops::creation_dtype(o.optional_string("dtype"), o.fn()); }

// empty({ shape, dtype?, device })
Napi::Value Empty(const Napi::CallbackInfo& info) {
  Options o(info[0], "empty");
  return wrap_tensor(info.Env(), ops::empty(o.integers("shape"), creation_dtype(o), creation_device(o)));
}

// full({ fn, shape, value, dtype?, device }): fn is the JS function (full, zeros, ones).
Napi::Value Full(const Napi::CallbackInfo& info) {
  std::string fn = Options(info[0], "full").string("fn");
  Options o(info[0], fn.c_str());
  return wrap_tensor(
      info.Env(), ops::full(o.integers("shape"), o.number("value"), creation_dtype(o), creation_device(o), fn.c_str()));
}

// arange({ n, dtype?, device })
Napi::Value Arange(const Napi::CallbackInfo& info) {
  Options o(info[0], "arange");
  return wrap_tensor(info.Env(), ops::arange(o.integer("n"), creation_dtype(o), creation_device(o)));
}

// manualSeed({ seed })
Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  ops::manual_seed(Options(info[0], "manualSeed").integer("seed"));
  return info.Env().Undefined();
}

// rand({ shape, dtype?, device, seed?, low?, high? })
Napi::Value Rand(const Napi::CallbackInfo& info) {
  Options o(info[0], "rand");
  return wrap_tensor(info.Env(),
                     ops::rand(o.integers("shape"), creation_dtype(o), creation_device(o), o.optional_integer("seed"),
                               o.optional_number("low"), o.optional_number("high")));
}

// randn({ shape, dtype?, device, seed?, mean?, std? })
Napi::Value Randn(const Napi::CallbackInfo& info) {
  Options o(info[0], "randn");
  return wrap_tensor(info.Env(),
                     ops::randn(o.integers("shape"), creation_dtype(o), creation_device(o), o.optional_integer("seed"),
                                o.optional_number("mean"), o.optional_number("std")));
}

// fromHost({ data: Float64Array | Float32Array | Int32Array, shape, dtype?, device })
Napi::Value FromHost(const Napi::CallbackInfo& info) {
  Options o(info[0], "tensor");
  Napi::Value data = o.get("data");
  DType host_dtype = DType::Float64;
  switch (data.IsTypedArray() ? data.As<Napi::TypedArray>().TypedArrayType() : napi_uint8_array) {
    case napi_float64_array: host_dtype = DType::Float64; break;
    case napi_float32_array: host_dtype = DType::Float32; break;
    case napi_int32_array: host_dtype = DType::Int32; break;
    default:
      throw_type_error("tensor: data must be a Float64Array, Float32Array or Int32Array, got ", describe_js(data));
  }
  auto array = data.As<Napi::TypedArray>();
  const uint8_t* bytes = static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  std::optional<std::string> dtype = o.optional_string("dtype");
  return wrap_tensor(info.Env(),
                     ops::from_host(bytes, host_dtype, static_cast<int64_t>(array.ElementLength()), o.integers("shape"),
                                    dtype ? std::optional<DType>(ops::dtype_from_name(*dtype, "tensor")) : std::nullopt,
                                    creation_device(o)));
}

// fromRaw({ bytes: Uint8Array, shape, dtype, device }): raw little-endian bytes of the dtype.
Napi::Value FromRaw(const Napi::CallbackInfo& info) {
  Options o(info[0], "fromRaw");
  Napi::Value bytes = o.get("bytes");
  if (!bytes.IsTypedArray() || bytes.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw_type_error("fromRaw: bytes must be a Uint8Array, got ", describe_js(bytes));
  }
  auto array = bytes.As<Napi::Uint8Array>();
  const uint8_t* data = static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  return wrap_tensor(
      info.Env(), ops::from_bytes(data, array.ByteLength(), o.integers("shape"),
                                  ops::dtype_from_name(o.string("dtype"), "fromRaw"), creation_device(o), "fromRaw"));
}

// toDtype({ x, dtype })
Napi::Value ToDtype(const Napi::CallbackInfo& info) {
  Options o(info[0], "Tensor.to");
  return wrap_tensor(info.Env(),
                     ops::to_dtype(o.tensor("x"), ops::dtype_from_name(o.string("dtype"), "Tensor.to", "target")));
}

// toDevice({ x, device })
Napi::Value ToDevice(const Napi::CallbackInfo& info) {
  Options o(info[0], "Tensor.to");
  return wrap_tensor(info.Env(),
                     ops::to_device(o.tensor("x"), ops::device_from_name(o.string("device"), "Tensor.to", "target")));
}

// clone(handle)
Napi::Value Clone(const Napi::CallbackInfo& info) {
  return wrap_tensor(info.Env(), ops::clone(tensor_arg(info[0], "Tensor.clone", "this")));
}

// reshape({ x, shape }): a view; one -1 is inferred.
Napi::Value Reshape(const Napi::CallbackInfo& info) {
  Options o(info[0], "Tensor.reshape");
  return wrap_tensor(info.Env(), ops::reshape(o.tensor("x"), o.integers("shape")));
}

// checkIndices({ values, limit })
Napi::Value CheckIndices(const Napi::CallbackInfo& info) {
  Options o(info[0], "checkIndices");
  return wrap_tensor(info.Env(), ops::check_indices(o.tensor("values"), o.integer("limit"), "checkIndices", "values"));
}

// read(handle) -> Promise<typed array>: the values after all queued work.
Napi::Value Read(const Napi::CallbackInfo& info) {
  const Tensor& t = tensor_arg(info[0], "Tensor.data", "this");
  return settle_later(info.Env(), true, ops::host_read_dtype(t.dtype), [&](const SettleTicket& ticket) {
    ops::read_to_host(t, [ticket](std::vector<uint8_t>&& bytes, const std::optional<RecordedError>& error) {
      ticket.pending()->bytes = std::move(bytes);
      ticket.pending()->error = error;
      ticket.complete();
    });
  });
}

// readSync(handle) -> typed array (blocks).
Napi::Value ReadSync(const Napi::CallbackInfo& info) {
  const Tensor& t = tensor_arg(info[0], "Tensor.dataSync", "this");
  // Straight into the typed array's buffer (the JS thread waits, so it stays alive).
  void* data = nullptr;
  Napi::Value array = new_typed_array(info.Env(), ops::host_read_dtype(t.dtype), static_cast<size_t>(t.numel()), &data);
  ops::read_to_host_blocking(t, data);
  return array;
}

// readRaw(handle) -> Uint8Array: the storage's own bytes, for checkpoints that
// must keep bfloat16/float16 bit for bit (blocks).
Napi::Value ReadRaw(const Napi::CallbackInfo& info) {
  const Tensor& t = tensor_arg(info[0], "readRaw", "tensor");
  std::vector<uint8_t> bytes = ops::read_to_host_blocking(t, true);
  auto buffer = Napi::ArrayBuffer::New(info.Env(), bytes.size());
  if (!bytes.empty()) std::memcpy(buffer.Data(), bytes.data(), bytes.size());
  return Napi::Uint8Array::New(info.Env(), bytes.size(), buffer, 0);
}

// synchronize({ device }) -> Promise<void>
Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  Device device = ops::device_from_name(Options(info[0], "synchronize").string("device"), "synchronize");
  return settle_later(info.Env(), false, DType::Float32, [&](const SettleTicket& ticket) {
    ops::when_device_done(device, [ticket](const std::optional<RecordedError>& error) {
      ticket.pending()->error = error;
      ticket.complete();
    });
  });
}

// checkDevice({ device, fn, arg }) -> the device's name ('cuda' reads 'cuda:0'),
// after checking that it is usable here.
Napi::Value CheckDevice(const Napi::CallbackInfo& info) {
  std::string fn = Options(info[0], "checkDevice").string("fn");
  Options o(info[0], fn.c_str());
  std::string arg = o.string("arg");
  return Napi::String::New(info.Env(), ops::usable_device(o.string("device"), fn.c_str(), arg.c_str()).to_string());
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
  result.Set("tensors", static_cast<double>(addon_state(env)->tensors.live()));
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
  export_bindings(env, exports,
                  {
                      {"release", Release},
                      {"tensorMeta", TensorMeta},
                      {"tensorShape", TensorShape},
                      {"empty", Empty},
                      {"full", Full},
                      {"arange", Arange},
                      {"manualSeed", ManualSeed},
                      {"rand", Rand},
                      {"randn", Randn},
                      {"fromHost", FromHost},
                      {"fromRaw", FromRaw},
                      {"toDtype", ToDtype},
                      {"toDevice", ToDevice},
                      {"clone", Clone},
                      {"reshape", Reshape},
                      {"checkIndices", CheckIndices},
                      {"read", Read},
                      {"readSync", ReadSync},
                      {"readRaw", ReadRaw},
                      {"synchronize", Synchronize},
                      {"checkDevice", CheckDevice},
                      {"memory", Memory},
                      {"emptyCache", EmptyCache},
                  });
}

}  // namespace lmk::addon
