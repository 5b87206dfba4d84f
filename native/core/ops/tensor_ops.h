// Tensor creation, conversion, transfer and read-back: validate, allocate,
// enqueue. Every function names itself in its errors (the JS API's name).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "runtime/error.h"
#include "runtime/tensor.h"

namespace lmk::ops {

Tensor empty(const Shape& shape, DType dtype, const Device& device, const char* fn = "empty");
Tensor full(const Shape& shape, double value, DType dtype, const Device& device, const char* fn = "full");
Tensor arange(int64_t n, DType dtype, const Device& device);

// Random creation (Philox4x32-10). Without a seed, the global generator's seed
// is used with a fresh counter offset, so successive calls differ.
void manual_seed(uint64_t seed);
Tensor rand(const Shape& shape, DType dtype, const Device& device, std::optional<uint64_t> seed, double low,
            double high);
Tensor randn(const Shape& shape, DType dtype, const Device& device, std::optional<uint64_t> seed, double mean,
             double std);

// Host data (float64, float32 or int32 values, copied at once) to a new tensor.
Tensor from_host(const void* data, DType host_dtype, int64_t count, const Shape& shape, DType dtype,
                 const Device& device);

Tensor to_dtype(const Tensor& src, DType dtype);  // always a new tensor
Tensor to_device(const Tensor& src, const Device& device);
Tensor clone(const Tensor& src);
Tensor reshape(const Tensor& src, const Shape& shape);  // view; one -1 allowed

// The host dtype data() returns: float32 for bf16/f16/f32, else the dtype itself.
DType host_read_dtype(DType dtype);

// Copies `src` to the host after all queued work; `done` runs on a background
// thread with the bytes (host_read_dtype) or the error to report.
using ReadDone = std::function<void(std::vector<uint8_t>&& bytes, const std::optional<RecordedError>& error)>;
// With raw = true the bytes are the storage's own (bf16/f16 as 16-bit words).
void read_to_host(const Tensor& src, ReadDone done, bool raw = false);

// The same, blocking the caller until the bytes land; throws the error.
// For C++ callers: the addon's dataSync, tests and benchmarks.
std::vector<uint8_t> read_to_host_blocking(const Tensor& src, bool raw = false);

// Resolves after all work queued on `device`; reports (and clears) its error.
void when_device_done(const Device& device, std::function<void(const std::optional<RecordedError>&)> done);

// A copy of int32 `values`; a value outside [0, limit) is reported at the next
// sync as a RangeError naming `fn`, `arg` and the first bad index, and the copy
// is poisoned. Exercises the value-check path (used by tests and debug code).
Tensor check_indices(const Tensor& values, int64_t limit, const char* fn, const char* arg);

}  // namespace lmk::ops
