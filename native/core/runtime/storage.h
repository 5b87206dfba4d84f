// Ref-counted device memory. A JS Tensor holds one reference; every queued
// task holds references to what it reads and writes, so memory returns to the
// device's pool only when the last user is done with it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>

#include "runtime/device.h"
#include "runtime/error.h"

namespace lmk {

class Storage {
 public:
  // Throws RangeError for a size no device could hold, Error when the pool
  // cannot allocate. `fn` names the calling op for the message.
  static std::shared_ptr<Storage> allocate(const Device& device, size_t bytes, const char* fn);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  const Device& device() const { return device_; }

  // Set when the op that writes this storage failed: reading it then rejects.
  void poison(const RecordedError& error);
  std::optional<RecordedError> poison_error() const;

 private:
  Storage(const Device& device, void* data, size_t bytes) : device_(device), data_(data), bytes_(bytes) {}
  Device device_;
  void* data_;
  size_t bytes_;
  mutable std::mutex poison_mutex_;
  std::optional<RecordedError> poison_;
};

using StoragePtr = std::shared_ptr<Storage>;

struct MemoryStats {
  int64_t bytes_in_use = 0;    // held by live storages
  int64_t bytes_reserved = 0;  // in use plus cached in the pool
};

MemoryStats memory_stats(const Device& device);
void empty_cache();  // every device: return pooled, unused memory

// Pool internals, one per device kind (cpu_allocator.cc, cuda_runtime.cc).
void* cpu_pool_allocate(size_t bytes);
void cpu_pool_release(void* data, size_t bytes);
MemoryStats cpu_pool_stats();
void cpu_pool_empty_cache();
void* cuda_pool_allocate(int device_index, size_t bytes);
void cuda_pool_release(int device_index, void* data, size_t bytes);
MemoryStats cuda_pool_stats(int device_index);
void cuda_pool_empty_cache();
// Free bytes on CUDA device `device_index` (cudaMemGetInfo; 0 when unknown).
uint64_t cuda_free_memory(int device_index);

}  // namespace lmk
