// Tensor creation, conversion, transfer and read-back: validate, allocate,
// enqueue. Every function names itself in its errors (the JS API's name).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "runtime/error.h"
#include "runtime/stream.h"
#include "runtime/tensor.h"

namespace lmk::ops {

// Dtype and device names as the JS API spells them ('float32', 'cpu',
// 'cuda', 'cuda:1'); TypeError naming fn/arg and the names it accepts.
DType dtype_from_name(const std::string& name, const char* fn, const char* arg = "dtype");
Device device_from_name(const std::string& name, const char* fn, const char* arg = "device");

// The dtype of a creation call: the named one, float32 when absent.
DType creation_dtype(const std::optional<std::string>& name, const char* fn);

Tensor empty(const Shape& shape, DType dtype, const Device& device, const char* fn = "empty");
// Every element = value. NaN and ±Infinity are values for the floating
// dtypes; for int32 the value must be finite and in int32's range, and is
// truncated toward zero (RangeError otherwise, as PyTorch's fill).
Tensor full(const Shape& shape, double value, DType dtype, const Device& device, const char* fn = "full");
void check_fill_value(double value, DType dtype, const char* fn);
Tensor arange(int64_t n, DType dtype, const Device& device);

// Random creation (Philox4x32-10). Without a seed, the global generator's seed
// is used with a fresh counter offset, so successive calls differ. Seeds are
// integers in [0, 2^53). rand: low (default 0) < high (default 1), both
// finite. randn: any mean (default 0; NaN and ±Infinity give those values),
// std (default 1) >= 0.
void manual_seed(int64_t seed);
Tensor rand(const Shape& shape, DType dtype, const Device& device, std::optional<int64_t> seed,
            std::optional<double> low = std::nullopt, std::optional<double> high = std::nullopt);
Tensor randn(const Shape& shape, DType dtype, const Device& device, std::optional<int64_t> seed,
             std::optional<double> mean = std::nullopt, std::optional<double> std = std::nullopt);

// Host data (float64, float32 or int32 values, copied at once) to a new
// tensor; dtype defaults to int32 for int32 data and float32 otherwise.
Tensor from_host(const void* data, DType host_dtype, int64_t count, const Shape& shape, std::optional<DType> dtype,
                 const Device& device);

// A tensor from the raw little-endian bytes of its own dtype (checkpoints):
// RangeError naming fn unless byte_length is a whole number of elements.
Tensor from_bytes(const void* data, size_t byte_length, const Shape& shape, DType dtype, const Device& device,
                  const char* fn);

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

// The same into `out` (numel × the host dtype's size, alive until `done`):
// done(the error to report, if any) runs after the copy.
void read_to_host_into(const Tensor& src, void* out, bool raw, DoneCallback done);

// Blocking the caller until the bytes land; throws the error. For C++
// callers: the addon's dataSync (straight into the typed array), tests and
// benchmarks.
void read_to_host_blocking(const Tensor& src, void* out, bool raw = false);
std::vector<uint8_t> read_to_host_blocking(const Tensor& src, bool raw = false);

// The device a name ('cpu', 'cuda', 'cuda:N') names, checked to be usable
// here (TypeError naming fn/arg otherwise).
Device usable_device(const std::string& name, const char* fn, const char* arg);

// Resolves after all work queued on `device`; reports (and clears) its error.
void when_device_done(const Device& device, std::function<void(const std::optional<RecordedError>&)> done);

// A copy of int32 `values` (limit >= 0); a value outside [0, limit) is reported at the next
// sync as a RangeError naming `fn`, `arg` and the first bad index, and the copy
// is poisoned. Exercises the value-check path (used by tests and debug code).
Tensor check_indices(const Tensor& values, int64_t limit, const char* fn, const char* arg);

}  // namespace lmk::ops
