#include "ops/tensor_ops.h"

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <future>
#include <memory>
#include <mutex>

#include "kernels/checks/index_check.h"
#include "kernels/copy/copy.h"
#include "kernels/creation/creation.h"
#include "ops/arg_checks.h"
#include "ops/op_task.h"
#include "runtime/cuda_call.h"
#include "runtime/stream.h"
#ifdef LMK_WITH_CUDA
#include <cuda_runtime_api.h>

#include "runtime/cuda_check.h"
#endif

namespace lmk::ops {
namespace {

std::atomic<uint64_t> global_seed{0};
std::atomic<uint64_t> global_offset{1};  // offset 0 is kept for explicit seeds

#ifdef LMK_WITH_CUDA
void* stream_handle(const Device& device) { return cuda_stream_handle(device.index); }
#endif

void check_seed(int64_t seed, const char* fn) {
  if (seed < 0 || seed > (int64_t(1) << 53) - 1)
    throw_range_error(fn, ": seed must be an integer in [0, 2^53), got ", seed);
}

}  // namespace

DType dtype_from_name(const std::string& name, const char* fn, const char* arg) {
  DType dtype;
  if (!parse_dtype(name, &dtype)) {
    throw_type_error(fn, ": ", arg, " must be one of float32, float64, bfloat16, float16, int32, got '", name, "'");
  }
  return dtype;
}

Device device_from_name(const std::string& name, const char* fn, const char* arg) {
  if (name == "cpu") return Device{DeviceKind::CPU, 0};
  if (name == "cuda") return Device{DeviceKind::CUDA, 0};
  if (name.rfind("cuda:", 0) == 0 && name.size() > 5 && name.size() < 15 &&
      name.find_first_not_of("0123456789", 5) == std::string::npos) {
    return Device{DeviceKind::CUDA, std::stoi(name.substr(5))};
  }
  throw_type_error(fn, ": ", arg, " must be 'cpu', 'cuda', 'cuda:N' or a Device, got '", name, "'");
}

DType creation_dtype(const std::optional<std::string>& name, const char* fn) {
  return name ? dtype_from_name(*name, fn) : DType::Float32;
}

Tensor empty(const Shape& shape, DType dtype, const Device& device, const char* fn) {
  check_device_usable(device, fn, "device");
  if (dtype == DType::Float64 && device.is_cuda()) {
    throw_type_error(fn, ": dtype float64 is CPU-only (for references and gradient checks), got device ",
                     device.to_string());
  }
  int64_t n = checked_numel(shape, fn, "shape");
  Tensor t;
  t.storage = Storage::allocate(device, static_cast<size_t>(n) * dtype_size(dtype), fn);
  t.shape = shape;
  t.dtype = dtype;
  return t;
}

void check_fill_value(double value, DType dtype, const char* fn) {
  if (dtype != DType::Int32) return;
  // Truncation toward zero must land in [-2^31, 2^31).
  if (!(value > -2147483649.0 && value < 2147483648.0)) {
    throw_range_error(fn, ": value ", js_number(value),
                      " cannot be stored in int32 (it must be finite and in int32's range)");
  }
}

Tensor full(const Shape& shape, double value, DType dtype, const Device& device, const char* fn) {
  check_fill_value(value, dtype, fn);
  OpTask task(fn, device);
  Tensor t = task.output(shape, dtype);
  int64_t n = t.numel();
  void* data = t.data();
  task.may_run_inline();
  task.enqueue([=] { kernels::fill_cpu(data, dtype, n, value); },
               [=](void* s) { LMK_CUDA_CALL(kernels::fill_cuda(data, dtype, n, value, s)); });
  return t;
}

Tensor arange(int64_t n, DType dtype, const Device& device) {
  if (n < 0) throw_range_error("arange: n must be a non-negative integer, got ", n);
  OpTask task("arange", device);
  Tensor t = task.output({n}, dtype);
  void* data = t.data();
  task.may_run_inline();
  task.enqueue([=] { kernels::arange_cpu(data, dtype, n); },
               [=](void* s) { LMK_CUDA_CALL(kernels::arange_cuda(data, dtype, n, s)); });
  return t;
}

void manual_seed(int64_t seed) {
  check_seed(seed, "manualSeed");
  global_seed.store(static_cast<uint64_t>(seed));
  global_offset.store(1);
}

static Tensor random_tensor(const char* fn, const Shape& shape, DType dtype, const Device& device,
                            std::optional<int64_t> seed, kernels::RandomParams params) {
  if (!dtype_is_float(dtype)) throw_type_error(fn, ": dtype must be a floating type, got ", dtype_name(dtype));
  if (seed) check_seed(*seed, fn);
  OpTask task(fn, device);
  Tensor t = task.output(shape, dtype);
  if (seed) {
    params.seed = static_cast<uint64_t>(*seed);
    params.offset = 0;
  } else {
    params.seed = global_seed.load();
    params.offset = global_offset.fetch_add(1);
  }
  int64_t n = t.numel();
  void* data = t.data();
  task.may_run_inline();
  task.enqueue([=] { kernels::random_cpu(data, dtype, n, params); },
               [=](void* s) { LMK_CUDA_CALL(kernels::random_cuda(data, dtype, n, params, s)); });
  return t;
}

Tensor rand(const Shape& shape, DType dtype, const Device& device, std::optional<int64_t> seed,
            std::optional<double> low, std::optional<double> high) {
  kernels::RandomParams params;
  params.low = low.value_or(0.0);
  params.high = high.value_or(1.0);
  if (!(params.low < params.high) || !std::isfinite(params.low) || !std::isfinite(params.high)) {
    throw_range_error("rand: low must be less than high, both finite, got low=", js_number(params.low),
                      ", high=", js_number(params.high));
  }
  return random_tensor("rand", shape, dtype, device, seed, params);
}

Tensor randn(const Shape& shape, DType dtype, const Device& device, std::optional<int64_t> seed,
             std::optional<double> mean, std::optional<double> std) {
  kernels::RandomParams params;
  params.normal = true;
  params.mean = mean.value_or(0.0);
  params.std = std.value_or(1.0);
  if (!(params.std >= 0)) throw_range_error("randn: std must be >= 0, got ", js_number(params.std));
  return random_tensor("randn", shape, dtype, device, seed, params);
}

Tensor from_host(const void* data, DType host_dtype, int64_t count, const Shape& shape,
                 std::optional<DType> dtype_option, const Device& device) {
  const DType dtype = dtype_option.value_or(host_dtype == DType::Int32 ? DType::Int32 : DType::Float32);
  int64_t n = checked_numel(shape, "tensor", "shape");
  if (n != count) {
    throw_range_error("tensor: shape ", shape_string(shape), " holds ", n, " elements but data has ", count);
  }
  Tensor t = empty(shape, dtype, device, "tensor");
  // Copy the caller's bytes now: the JS array may change after we return.
  auto staging = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(n) * dtype_size(host_dtype));
  if (n > 0) std::memcpy(staging->data(), data, staging->size());
  void* dst = t.data();
  if (device.is_cpu()) {
    stream_for(device).enqueue(
        "tensor", [=] { kernels::convert_cpu(staging->data(), host_dtype, dst, dtype, n); }, {t.storage}, {t.storage},
        compute_placement(staging->size() + t.nbytes()));
    return t;
  }
#ifdef LMK_WITH_CUDA
  // Convert on the host, then one stream-ordered copy; the staging buffer is
  // released once the copy has finished.
  auto converted = std::make_shared<std::vector<uint8_t>>(t.nbytes());
  kernels::convert_cpu(staging->data(), host_dtype, converted->data(), dtype, n);
  void* s = stream_handle(device);
  Stream& stream = stream_for(device);
  stream.enqueue("tensor",
                 [=] {
                   cuda_check(cudaMemcpyAsync(dst, converted->data(), converted->size(), cudaMemcpyHostToDevice,
                                              static_cast<cudaStream_t>(s)),
                              "tensor");
                 },
                 {t.storage}, {t.storage});
  stream.keep_until_done(converted);
#endif
  return t;
}

Tensor from_bytes(const void* data, size_t byte_length, const Shape& shape, DType dtype, const Device& device,
                  const char* fn) {
  const size_t size = dtype_size(dtype);
  if (byte_length % size != 0) {
    throw_range_error(fn, ": ", byte_length, " bytes is not a whole number of ", dtype_name(dtype), " elements");
  }
  return from_host(data, dtype, static_cast<int64_t>(byte_length / size), shape, dtype, device);
}

Tensor to_dtype(const Tensor& src, DType dtype) {
  OpTask task("Tensor.to", src.device());
  Tensor dst = task.output(src.shape, dtype);
  task.read(src);
  int64_t n = src.numel();
  const void* in = src.data();
  void* out = dst.data();
  DType src_dtype = src.dtype;
  task.may_run_inline();
  task.enqueue([=] { kernels::convert_cpu(in, src_dtype, out, dtype, n); },
               [=](void* s) { LMK_CUDA_CALL(kernels::convert_cuda(in, src_dtype, out, dtype, n, s)); });
  return dst;
}

Tensor clone(const Tensor& src) {
  Tensor dst = to_dtype(src, src.dtype);
  return dst;
}

#ifdef LMK_WITH_CUDA
namespace {
// Page-locked host memory for transfers between the CPU and CUDA streams.
struct PinnedBuffer {
  void* data = nullptr;
  explicit PinnedBuffer(size_t bytes) { cuda_check(cudaMallocHost(&data, bytes == 0 ? 1 : bytes), "Tensor.to"); }
  ~PinnedBuffer() { cudaFreeHost(data); }
};
}  // namespace
#endif

Tensor to_device(const Tensor& src, const Device& device) {
  check_device_usable(device, "Tensor.to", "target");
  if (device == src.device()) return clone(src);
  Tensor dst = empty(src.shape, src.dtype, device, "Tensor.to");
#ifdef LMK_WITH_CUDA
  size_t bytes = src.nbytes();
  auto pinned = std::make_shared<PinnedBuffer>(bytes);
  const void* in = src.data();
  void* out = dst.data();
  if (src.device().is_cpu()) {
    // The CPU stream fills a pinned buffer; the CUDA stream waits for that
    // (a host function that blocks on the CPU task), then copies it in.
    auto filled = std::make_shared<std::promise<void>>();
    auto ready = std::make_shared<std::shared_future<void>>(filled->get_future().share());
    stream_for(src.device())
        .enqueue("Tensor.to",
                 [=] {
                   std::memcpy(pinned->data, in, bytes);
                   filled->set_value();
                 },
                 {src.storage}, {});
    Stream& cuda = stream_for(device);
    auto s = static_cast<cudaStream_t>(stream_handle(device));
    auto* wait_ready = new std::shared_future<void>(*ready);
    cuda.enqueue("Tensor.to",
                 [=] {
                   cuda_check(cudaLaunchHostFunc(
                                  s,
                                  [](void* arg) {
                                    auto* f = static_cast<std::shared_future<void>*>(arg);
                                    f->wait();
                                    delete f;
                                  },
                                  wait_ready),
                              "Tensor.to");
                   cuda_check(cudaMemcpyAsync(out, pinned->data, bytes, cudaMemcpyHostToDevice, s), "Tensor.to");
                 },
                 {dst.storage}, {dst.storage});
    cuda.keep_until_done(pinned);
  } else {
    // The CUDA stream copies into a pinned buffer and records an event; the
    // CPU stream waits for the event, then copies out.
    auto s = static_cast<cudaStream_t>(stream_handle(src.device()));
    auto event = std::make_shared<cudaEvent_t>(nullptr);
    stream_for(src.device())
        .enqueue("Tensor.to",
                 [=] {
                   cuda_check(cudaMemcpyAsync(pinned->data, in, bytes, cudaMemcpyDeviceToHost, s), "Tensor.to");
                   cuda_check(cudaEventCreateWithFlags(event.get(), cudaEventDisableTiming), "Tensor.to");
                   cuda_check(cudaEventRecord(*event, s), "Tensor.to");
                 },
                 {src.storage}, {});
    stream_for(device).enqueue("Tensor.to",
                               [=] {
                                 if (*event == nullptr)
                                   throw_runtime_error("Tensor.to: the device-to-host copy could not be queued");
                                 cudaError_t status = cudaEventSynchronize(*event);
                                 cudaEventDestroy(*event);
                                 cuda_check(status, "Tensor.to");
                                 std::memcpy(out, pinned->data, bytes);
                               },
                               {dst.storage}, {dst.storage});
  }
#endif
  return dst;
}

Tensor reshape(const Tensor& src, const Shape& shape) {
  int64_t known = 1;
  int inferred = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (inferred >= 0) throw_range_error("Tensor.reshape: shape may contain only one -1, got ", shape_string(shape));
      inferred = static_cast<int>(i);
    } else if (shape[i] < 0) {
      throw_range_error("Tensor.reshape: shape sizes must be >= 0 or a single -1, got ", shape_string(shape));
    } else {
      known = known * shape[i];
      if (known > (int64_t(1) << 53)) throw_range_error("Tensor.reshape: shape ", shape_string(shape), " is too large");
    }
  }
  Shape result = shape;
  int64_t n = src.numel();
  if (inferred >= 0) {
    if (known == 0 || n % known != 0) {
      throw_range_error("Tensor.reshape: cannot infer -1 in ", shape_string(shape), " for ", n, " elements (shape ",
                        shape_string(src.shape), ")");
    }
    result[inferred] = n / known;
  } else if (known != n) {
    throw_range_error("Tensor.reshape: cannot reshape ", shape_string(src.shape), " (", n, " elements) to ",
                      shape_string(shape), " (", known, " elements)");
  }
  Tensor view = src;
  view.shape = result;
  return view;
}

DType host_read_dtype(DType dtype) {
  return (dtype == DType::BFloat16 || dtype == DType::Float16) ? DType::Float32 : dtype;
}

void read_to_host_into(const Tensor& src, void* out, bool raw, DoneCallback done) {
  DType host_dtype = raw ? src.dtype : host_read_dtype(src.dtype);
  int64_t n = src.numel();
  const size_t out_bytes = static_cast<size_t>(n) * dtype_size(host_dtype);
  Stream& stream = stream_for(src.device());
  const void* in = src.data();
  DType src_dtype = src.dtype;
  StoragePtr storage = src.storage;
  if (src.device().is_cpu()) {
    // A small read (after an idle stream) copies on the calling thread; the
    // when_done below then reports at once too.
    stream.enqueue(
        "data", [=] { kernels::convert_cpu(in, src_dtype, out, host_dtype, n); }, {storage}, {},
        compute_placement(out_bytes + storage->bytes()));
  } else {
#ifdef LMK_WITH_CUDA
    void* s = stream_handle(src.device());
    Tensor staging = src_dtype == host_dtype ? src : empty(src.shape, host_dtype, src.device(), "data");
    const void* device_in = staging.data();
    StoragePtr staging_storage = staging.storage;
    stream.enqueue(
        "data",
        [=] {
          if (src_dtype != host_dtype) kernels::convert_cuda(in, src_dtype, staging_storage->data(), host_dtype, n, s);
          cuda_check(cudaMemcpyAsync(out, device_in, out_bytes, cudaMemcpyDeviceToHost, static_cast<cudaStream_t>(s)),
                     "data");
        },
        {storage, staging_storage}, {});
#endif
  }
  stream.when_done([storage, done = std::move(done)](const std::optional<RecordedError>& error) {
    done(error ? error : storage->poison_error());
  });
}

void read_to_host(const Tensor& src, ReadDone done, bool raw) {
  DType host_dtype = raw ? src.dtype : host_read_dtype(src.dtype);
  auto bytes = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(src.numel()) * dtype_size(host_dtype));
  read_to_host_into(
      src, bytes->data(), raw,
      [bytes, done = std::move(done)](const std::optional<RecordedError>& error) { done(std::move(*bytes), error); });
}

void read_to_host_blocking(const Tensor& src, void* out, bool raw) {
  // The hand-over lives on this stack frame: nothing to allocate, and when the
  // read runs on the calling thread (an idle CPU stream) the wait returns at once.
  struct Landing {
    std::mutex mutex;
    std::condition_variable landed;
    bool done = false;
    std::optional<RecordedError> error;
  } landing;
  read_to_host_into(src, out, raw, [&landing](const std::optional<RecordedError>& error) {
    std::lock_guard<std::mutex> lock(landing.mutex);
    landing.error = error;
    landing.done = true;
    landing.landed.notify_one();  // under the lock: the waiter cannot return (and free landing) before it is released
  });
  std::unique_lock<std::mutex> lock(landing.mutex);
  landing.landed.wait(lock, [&landing] { return landing.done; });
  if (landing.error) throw Error(landing.error->kind, landing.error->message);
}

std::vector<uint8_t> read_to_host_blocking(const Tensor& src, bool raw) {
  std::vector<uint8_t> bytes(static_cast<size_t>(src.numel()) *
                             dtype_size(raw ? src.dtype : host_read_dtype(src.dtype)));
  read_to_host_blocking(src, bytes.data(), raw);
  return bytes;
}

Device usable_device(const std::string& name, const char* fn, const char* arg) {
  Device device = device_from_name(name, fn, arg);
  check_device_usable(device, fn, arg);
  return device;
}

void when_device_done(const Device& device, std::function<void(const std::optional<RecordedError>&)> done) {
  check_device_usable(device, "synchronize", "device");
  stream_for(device).when_done(std::move(done));
}

Tensor check_indices(const Tensor& values, int64_t limit, const char* fn, const char* arg) {
  check_int32_input(values, fn, arg);
  check_at_least(limit, 0, fn, "limit");
  OpTask task(fn, values.device());
  Tensor copy = task.output(values.shape, DType::Int32);
  task.read(values);
  std::string fn_name = fn, arg_name = arg;
  Shape shape = values.shape;
  int64_t* first_bad = task.value_check(ErrorKind::Range, [=](int64_t index) {
    return concat(fn_name, ": ", arg_name, " has a value outside [0, ", limit, ") at flat index ", index, " (shape ",
                  shape_string(shape), ")");
  });
  const int32_t* in = values.data_as<int32_t>();
  int32_t* out = copy.data_as<int32_t>();
  int64_t n = values.numel();
  task.may_run_inline();
  task.enqueue(
      [=] {
        kernels::convert_cpu(in, DType::Int32, out, DType::Int32, n);
        kernels::index_check_cpu(in, n, limit, first_bad);
      },
      [=](void* s) {
        LMK_CUDA_CALL(kernels::convert_cuda(in, DType::Int32, out, DType::Int32, n, s));
        LMK_CUDA_CALL(kernels::index_check_cuda(in, n, limit, first_bad, s));
      });
  return copy;
}

}  // namespace lmk::ops
