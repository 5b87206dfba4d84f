#include "runtime/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace lmk {
namespace {

int configured_threads() {
  if (const char* env = std::getenv("LMK_NUM_THREADS")) {
    int value = std::atoi(env);
    if (value >= 1) return std::min(value, 1024);
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

// A fixed set of helper threads that wait for a job; one job at a time (the
// CPU stream runs one task at a time, and kernels do not nest parallel_for).
class ThreadPool {
 public:
  explicit ThreadPool(int threads) : size_(threads) {
    for (int i = 1; i < threads; ++i) helpers_.emplace_back([this] { helper_loop(); });
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& t : helpers_) t.join();
  }
  int size() const { return size_; }

  void run(int64_t chunks, const std::function<void(int64_t)>& chunk_fn) {
    if (chunks <= 1 || helpers_.empty() || inside_job_ || serial_) {
      for (int64_t c = 0; c < chunks; ++c) chunk_fn(c);
      return;
    }
    std::lock_guard<std::mutex> serial(run_mutex_);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &chunk_fn;
      job_chunks_ = chunks;
      next_chunk_.store(0);
      pending_helpers_ = static_cast<int>(helpers_.size());
      first_error_ = nullptr;
      ++generation_;
    }
    wake_.notify_all();
    work_on_job(chunk_fn, chunks);
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return pending_helpers_ == 0; });
    job_ = nullptr;
    if (first_error_) std::rethrow_exception(first_error_);
  }

 private:
  void work_on_job(const std::function<void(int64_t)>& chunk_fn, int64_t chunks) {
    inside_job_ = true;
    for (;;) {
      int64_t c = next_chunk_.fetch_add(1);
      if (c >= chunks) break;
      try {
        chunk_fn(c);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!first_error_) first_error_ = std::current_exception();
      }
    }
    inside_job_ = false;
  }

  void helper_loop() {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int64_t)>* job;
      int64_t chunks;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
        if (stopping_) return;
        seen = generation_;
        job = job_;
        chunks = job_chunks_;
      }
      work_on_job(*job, chunks);
      std::lock_guard<std::mutex> lock(mutex_);
      if (--pending_helpers_ == 0) done_.notify_one();
    }
  }

  int size_;
  std::vector<std::thread> helpers_;
  std::mutex run_mutex_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  bool stopping_ = false;
  uint64_t generation_ = 0;
  const std::function<void(int64_t)>* job_ = nullptr;
  int64_t job_chunks_ = 0;
  std::atomic<int64_t> next_chunk_{0};
  int pending_helpers_ = 0;
  std::exception_ptr first_error_;
  static thread_local bool inside_job_;

 public:
  static thread_local bool serial_;  // SerialParallelFor
};

thread_local bool ThreadPool::inside_job_ = false;
thread_local bool ThreadPool::serial_ = false;

ThreadPool& pool() {
  // Leaked on purpose: helper threads must not be joined during static
  // destruction while Node tears the addon down.
  static ThreadPool* instance = new ThreadPool(configured_threads());
  return *instance;
}

}  // namespace

int thread_pool_size() { return pool().size(); }

SerialParallelFor::SerialParallelFor() : previous_(ThreadPool::serial_) { ThreadPool::serial_ = true; }
SerialParallelFor::~SerialParallelFor() { ThreadPool::serial_ = previous_; }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  int64_t max_chunks = static_cast<int64_t>(pool().size()) * 4;
  int64_t chunks = std::min<int64_t>(max_chunks, (n + grain - 1) / grain);
  chunks = std::max<int64_t>(chunks, 1);
  int64_t per_chunk = (n + chunks - 1) / chunks;
  chunks = (n + per_chunk - 1) / per_chunk;
  pool().run(chunks, [&](int64_t c) {
    int64_t begin = c * per_chunk;
    int64_t end = std::min(n, begin + per_chunk);
    if (begin < end) fn(begin, end);
  });
}

}  // namespace lmk
