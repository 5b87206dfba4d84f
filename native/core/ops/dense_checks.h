// Validation and scheduling helpers shared by the dense ops (elementwise,
// reduce, matmul, norm, embedding, rope, shape, optim). Every check throws
// before any work is queued, naming the function and the argument:
//   TypeError  a missing/disposed tensor, a wrong dtype, another device
//   RangeError a wrong shape, dim or option value
#pragma once
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "runtime/error.h"
#include "runtime/stream.h"
#include "runtime/tensor.h"

namespace lmk::ops::dense {

// A tensor with storage (not disposed/unset).
void check_tensor(const Tensor& t, const char* fn, const char* arg);

// The first floating tensor of a call: present, on a usable device, dtype
// float32 | bfloat16 | float16 | float64 (float64 on the CPU only).
void check_float(const Tensor& t, const char* fn, const char* arg);

// Present, on `device` and of `dtype`, like the argument named `like`.
void check_like(const Tensor& t, const Device& device, DType dtype, const char* fn, const char* arg, const char* like);

// Present, int32, on `device` (ids, positions).
void check_int32(const Tensor& t, const Device& device, const char* fn, const char* arg, const char* like);

// A dim in [-rank, rank) made non-negative; RangeError otherwise.
int64_t normalize_dim(int64_t dim, int64_t rank, const char* fn, const char* arg);

// float64 for float64 tensors, else float32 (statistics, norms).
inline DType accumulation_dtype(DType dtype) { return dtype == DType::Float64 ? DType::Float64 : DType::Float32; }

// A view of `t` with another shape (same element count, contiguous).
Tensor view(const Tensor& t, const Shape& shape);

std::vector<StoragePtr> storages(std::initializer_list<const Tensor*> tensors);

// Enqueues `cpu()` or `cuda(cudaStream_t as void*)` on the device's stream.
// `fn` must be a string literal (the stream keeps the pointer for errors).
template <typename Cpu, typename Cuda>
void launch(const char* fn, const Device& device, Cpu&& cpu, Cuda&& cuda, std::vector<StoragePtr> uses,
            std::vector<StoragePtr> outputs) {
  Stream& stream = stream_for(device);
  if (device.is_cpu()) {
    stream.enqueue(fn, std::forward<Cpu>(cpu), std::move(uses), std::move(outputs));
    return;
  }
  void* handle = cuda_stream_handle(device.index);
  stream.enqueue(
      fn, [cuda = std::forward<Cuda>(cuda), handle]() { cuda(handle); }, std::move(uses), std::move(outputs));
}

}  // namespace lmk::ops::dense
