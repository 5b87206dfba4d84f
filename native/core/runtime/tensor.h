// A tensor descriptor: storage plus shape, dtype and element offset. Cheap to
// copy; views (reshape) share the storage. Always contiguous.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/dtype.h"
#include "runtime/storage.h"

namespace lmk {

using Shape = std::vector<int64_t>;

struct Tensor {
  StoragePtr storage;
  Shape shape;
  DType dtype = DType::Float32;
  int64_t offset = 0;  // in elements

  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  const Device& device() const { return storage->device(); }
  void* data() const { return static_cast<char*>(storage->data()) + offset * static_cast<int64_t>(dtype_size(dtype)); }
  template <typename T>
  T* data_as() const {
    return static_cast<T*>(data());
  }
};

std::string shape_string(const Shape& shape);  // "[2,3]"

// Element count of a shape; RangeError naming fn/arg for a negative or
// overflowing size (limit 2^53 elements, exact in a JS number).
int64_t checked_numel(const Shape& shape, const char* fn, const char* arg);

}  // namespace lmk
