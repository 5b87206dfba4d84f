#include "runtime/storage.h"

namespace lmk {

// Far beyond any device here; also keeps byte counts clear of int64 overflow.
static constexpr size_t kMaxAllocationBytes = size_t(1) << 48;

std::shared_ptr<Storage> Storage::allocate(const Device& device, size_t bytes, const char* fn) {
  if (bytes > kMaxAllocationBytes) {
    throw_range_error(fn, ": cannot allocate ", bytes, " bytes on ", device.to_string(),
                      " (more than the 2^48-byte limit)");
  }
  void* data = device.is_cpu() ? cpu_pool_allocate(bytes) : cuda_pool_allocate(device.index, bytes);
  if (data == nullptr && bytes > 0) {
    throw_runtime_error(fn, ": out of memory allocating ", bytes, " bytes on ", device.to_string());
  }
  return std::shared_ptr<Storage>(new Storage(device, data, bytes));
}

Storage::~Storage() {
  if (device_.is_cpu()) {
    cpu_pool_release(data_, bytes_);
  } else {
    cuda_pool_release(device_.index, data_, bytes_);
  }
}

void Storage::poison(const RecordedError& error) {
  std::lock_guard<std::mutex> lock(poison_mutex_);
  if (!poison_) poison_ = error;
}

std::optional<RecordedError> Storage::poison_error() const {
  std::lock_guard<std::mutex> lock(poison_mutex_);
  return poison_;
}

MemoryStats memory_stats(const Device& device) {
  return device.is_cpu() ? cpu_pool_stats() : cuda_pool_stats(device.index);
}

void empty_cache() {
  cpu_pool_empty_cache();
  cuda_pool_empty_cache();
}

}  // namespace lmk
