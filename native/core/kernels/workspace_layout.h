// Lays out one workspace allocation as consecutive pieces, each starting on a
// 64-byte boundary. With base = nullptr every piece is nullptr and only the
// size is counted, so one function describing a kernel's workspace gives both
// the bytes to allocate and, later, the pointers into the allocation.
#pragma once
#include <cstddef>

namespace lmk::kernels {

class WorkspaceLayout {
 public:
  explicit WorkspaceLayout(void* base) : base_(static_cast<char*>(base)) {}

  // The next piece of `bytes` bytes, as a T*.
  template <typename T = void>
  T* take(size_t bytes) {
    char* piece = base_ ? base_ + offset_ : nullptr;
    offset_ += (bytes + 63) / 64 * 64;
    return reinterpret_cast<T*>(piece);
  }

  size_t bytes() const { return offset_; }

 private:
  char* base_;
  size_t offset_ = 0;
};

}  // namespace lmk::kernels
