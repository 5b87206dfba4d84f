// CPU caching pool: 64-byte aligned blocks, cached by rounded size so that a
// training loop that frees and re-creates the same shapes stops calling malloc.
#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

#include "runtime/storage.h"

namespace lmk {
namespace {

constexpr size_t kAlignment = 64;
// Cached blocks beyond this are freed at once instead of pooled.
constexpr size_t kMaxCachedBytes = size_t(2) << 30;

// Small blocks round to 64 bytes; larger ones to 1/8 of their power of two,
// so a cached block wastes at most 12.5%.
size_t rounded_size(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes <= 4096) return (bytes + kAlignment - 1) / kAlignment * kAlignment;
  size_t power = 1;
  while (power < bytes) power <<= 1;
  size_t step = power / 8;
  return (bytes + step - 1) / step * step;
}

struct CpuPool {
  std::mutex mutex;
  std::map<size_t, std::vector<void*>> free_blocks;
  int64_t in_use = 0;
  int64_t cached = 0;
};

CpuPool& pool() {
  static CpuPool* instance = new CpuPool();  // leaked: storages may die during exit
  return *instance;
}

}  // namespace

void* cpu_pool_allocate(size_t bytes) {
  size_t size = rounded_size(bytes);
  CpuPool& p = pool();
  {
    std::lock_guard<std::mutex> lock(p.mutex);
    auto it = p.free_blocks.find(size);
    if (it != p.free_blocks.end() && !it->second.empty()) {
      void* block = it->second.back();
      it->second.pop_back();
      p.cached -= static_cast<int64_t>(size);
      p.in_use += static_cast<int64_t>(size);
      return block;
    }
  }
  void* block = std::aligned_alloc(kAlignment, size);
  if (block == nullptr) {
    cpu_pool_empty_cache();
    block = std::aligned_alloc(kAlignment, size);
    if (block == nullptr) return nullptr;
  }
  std::lock_guard<std::mutex> lock(p.mutex);
  p.in_use += static_cast<int64_t>(size);
  return block;
}

void cpu_pool_release(void* data, size_t bytes) {
  if (data == nullptr) return;
  size_t size = rounded_size(bytes);
  CpuPool& p = pool();
  std::lock_guard<std::mutex> lock(p.mutex);
  p.in_use -= static_cast<int64_t>(size);
  if (p.cached + static_cast<int64_t>(size) > static_cast<int64_t>(kMaxCachedBytes)) {
    std::free(data);
    return;
  }
  p.free_blocks[size].push_back(data);
  p.cached += static_cast<int64_t>(size);
}

MemoryStats cpu_pool_stats() {
  CpuPool& p = pool();
  std::lock_guard<std::mutex> lock(p.mutex);
  return MemoryStats{p.in_use, p.in_use + p.cached};
}

void cpu_pool_empty_cache() {
  CpuPool& p = pool();
  std::lock_guard<std::mutex> lock(p.mutex);
  for (auto& [size, blocks] : p.free_blocks) {
    for (void* block : blocks) std::free(block);
  }
  p.free_blocks.clear();
  p.cached = 0;
}

}  // namespace lmk
