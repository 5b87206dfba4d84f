// Intra-op thread pool for the CPU backend. LMK_NUM_THREADS sets its size
// (default: the number of cores). parallel_for splits [0, n) into chunks of at
// least `grain` items and runs them on the pool plus the calling thread.
#pragma once
#include <cstdint>
#include <functional>

namespace lmk {

int thread_pool_size();

// fn(begin, end) is called on disjoint ranges covering [0, n). The chunking
// depends only on n, grain and the pool size, so a kernel that reduces within
// a chunk in order is deterministic for a fixed thread count.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// While one lives, parallel_for on this thread runs its chunks one after the
// other on this thread: the same chunks, so the same results. For the small
// tasks the CPU stream runs on the calling thread, where waking the pool
// would cost more than the work.
class SerialParallelFor {
 public:
  SerialParallelFor();
  ~SerialParallelFor();
  SerialParallelFor(const SerialParallelFor&) = delete;
  SerialParallelFor& operator=(const SerialParallelFor&) = delete;

 private:
  bool previous_;
};

}  // namespace lmk
