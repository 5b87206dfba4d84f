#include "runtime/tensor.h"

#include "runtime/error.h"

namespace lmk {

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

int64_t checked_numel(const Shape& shape, const char* fn, const char* arg) {
  constexpr int64_t kMaxElements = int64_t(1) << 53;
  int64_t n = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) throw_range_error(fn, ": ", arg, " must have non-negative sizes, got ", shape_string(shape));
    if (shape[i] != 0 && n > kMaxElements / shape[i]) {
      throw_range_error(fn, ": ", arg, " ", shape_string(shape), " has more than 2^53 elements");
    }
    n *= shape[i];
  }
  return n;
}

}  // namespace lmk
