#include "ops/dense_checks.h"

namespace lmk::ops::dense {

void check_tensor(const Tensor& t, const char* fn, const char* arg) {
  if (!t.storage) throw_type_error(fn, ": ", arg, " must be a tensor, got one without storage (disposed or unset)");
}

void check_float(const Tensor& t, const char* fn, const char* arg) {
  check_tensor(t, fn, arg);
  check_device_usable(t.device(), fn, arg);
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

void check_like(const Tensor& t, const Device& device, DType dtype, const char* fn, const char* arg, const char* like) {
  check_tensor(t, fn, arg);
  if (t.device() != device) {
    throw_type_error(fn, ": ", arg, " must be on the same device as ", like, " (", device.to_string(), "), got ",
                     t.device().to_string());
  }
  if (t.dtype != dtype) {
    throw_type_error(fn, ": ", arg, " must have dtype ", dtype_name(dtype), " like ", like, ", got ",
                     dtype_name(t.dtype));
  }
}

void check_int32(const Tensor& t, const Device& device, const char* fn, const char* arg, const char* like) {
  check_tensor(t, fn, arg);
  if (t.dtype != DType::Int32) throw_type_error(fn, ": ", arg, " must have dtype int32, got ", dtype_name(t.dtype));
  if (t.device() != device) {
    throw_type_error(fn, ": ", arg, " must be on the same device as ", like, " (", device.to_string(), "), got ",
                     t.device().to_string());
  }
}

int64_t normalize_dim(int64_t dim, int64_t rank, const char* fn, const char* arg) {
  if (dim < -rank || dim >= rank) {
    if (rank == 0) throw_range_error(fn, ": ", arg, " ", dim, " is out of range for a 0-d tensor");
    throw_range_error(fn, ": ", arg, " ", dim, " is out of range for a tensor of rank ", rank, " (expected [", -rank,
                      ", ", rank - 1, "])");
  }
  return dim < 0 ? dim + rank : dim;
}

Tensor view(const Tensor& t, const Shape& shape) {
  Tensor v = t;
  v.shape = shape;
  return v;
}

std::vector<StoragePtr> storages(std::initializer_list<const Tensor*> tensors) {
  std::vector<StoragePtr> out;
  for (const Tensor* t : tensors) {
    if (t && t->storage) out.push_back(t->storage);
  }
  return out;
}

}  // namespace lmk::ops::dense
