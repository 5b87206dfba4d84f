// CUDA devices, the stream-ordered memory pool and the CUDA stream. Built only
// when CUDA is compiled in; linked against the static runtime, never libcuda,
// so it loads without a driver and reports why CUDA is unavailable.
#include <cuda_runtime_api.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "runtime/cuda_check.h"
#include "runtime/device.h"
#include "runtime/storage.h"
#include "runtime/stream.h"

namespace lmk {

const CudaInfo& cuda_info() {
  static const CudaInfo info = [] {
    CudaInfo i;
    i.compiled = true;
    cudaRuntimeGetVersion(&i.runtime_version);
    if (cudaDriverGetVersion(&i.driver_version) != cudaSuccess) i.driver_version = 0;
    int count = 0;
    cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess) {
      i.available = false;
      i.reason = std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
      cudaGetLastError();  // clear it
      return i;
    }
    if (count == 0) {
      i.available = false;
      i.reason = "no CUDA device is present";
      return i;
    }
    for (int d = 0; d < count; ++d) {
      cudaDeviceProp prop;
      if (cudaGetDeviceProperties(&prop, d) != cudaSuccess) continue;
      CudaDeviceInfo dev;
      dev.index = d;
      dev.name = prop.name;
      dev.compute_capability = std::to_string(prop.major) + "." + std::to_string(prop.minor);
      dev.total_memory = prop.totalGlobalMem;
      i.devices.push_back(dev);
    }
    i.available = !i.devices.empty();
    if (!i.available) i.reason = "no CUDA device could be queried";
    return i;
  }();
  return info;
}

namespace {

struct CudaPendingCheck {
  int64_t* host_word;
  int64_t* device_word;
  ErrorKind kind;
  DescribeBadIndex describe;
  std::vector<StoragePtr> outputs;
};

// Mapped, pinned words for value checks, handed out from a free list.
class CheckWordPool {
 public:
  std::pair<int64_t*, int64_t*> acquire() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (free_.empty()) grow();
    auto words = free_.back();
    free_.pop_back();
    *words.first = kNoBadIndex;
    return words;
  }
  void release(int64_t* host, int64_t* device) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.emplace_back(host, device);
  }

 private:
  void grow() {
    constexpr int kWords = 1024;
    void* host = nullptr;
    cuda_check(cudaHostAlloc(&host, kWords * sizeof(int64_t), cudaHostAllocMapped | cudaHostAllocPortable),
               "value check");
    void* device = nullptr;
    cuda_check(cudaHostGetDevicePointer(&device, host, 0), "value check");
    for (int w = 0; w < kWords; ++w) {
      free_.emplace_back(static_cast<int64_t*>(host) + w, static_cast<int64_t*>(device) + w);
    }
  }
  std::mutex mutex_;
  std::vector<std::pair<int64_t*, int64_t*>> free_;
};

CheckWordPool& check_words() {
  static CheckWordPool* pool = new CheckWordPool();
  return *pool;
}

class CudaStream final : public Stream {
 public:
  explicit CudaStream(int index) : device_{DeviceKind::CUDA, index} {
    cuda_check(cudaSetDevice(index), "cuda stream");
    cuda_check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cuda stream");
    cuda_check(cudaDeviceGetDefaultMemPool(&pool_, index), "cuda memory pool");
    uint64_t keep_everything = UINT64_MAX;  // cache freed blocks; emptyCache() trims
    cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &keep_everything);
    std::thread([this] { completion_loop(); }).detach();
  }

  const Device& device() const override { return device_; }
  cudaStream_t handle() const { return stream_; }
  cudaMemPool_t pool() const { return pool_; }

  void enqueue(std::string op, std::function<void()> run, std::vector<StoragePtr> uses, std::vector<StoragePtr> outputs,
               Placement) override {
    cudaSetDevice(device_.index);
    try {
      run();
      cuda_check_launch(op.c_str());
    } catch (const Error& e) {
      record(op, e.kind(), e.what(), outputs);
    } catch (const std::exception& e) {
      record(op, ErrorKind::Runtime, e.what(), outputs);
    }
    // `uses` may go now: their memory is freed with cudaFreeAsync on this
    // same stream, which orders the free after the kernels just launched.
    (void)uses;
  }

  ValueCheck add_value_check(ErrorKind kind, DescribeBadIndex describe, std::vector<StoragePtr> outputs) override {
    auto words = check_words().acquire();
    auto check = std::make_shared<CudaPendingCheck>(
        CudaPendingCheck{words.first, words.second, kind, std::move(describe), std::move(outputs)});
    std::lock_guard<std::mutex> lock(mutex_);
    checks_.push_back(check);
    return ValueCheck{words.second};
  }

  void keep_until_done(std::shared_ptr<void> keep) override {
    Completion completion;
    completion.keep = std::move(keep);
    completion.reports = false;
    add_completion(std::move(completion));
  }

  void when_done(DoneCallback done) override {
    Completion completion;
    completion.done = std::move(done);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      completion.checks.swap(checks_);
    }
    add_completion(std::move(completion));
  }

  void record(const std::string& op, ErrorKind kind, const std::string& what, const std::vector<StoragePtr>& outputs) {
    std::string prefix = op + ":";
    RecordedError error{kind, what.rfind(prefix, 0) == 0 ? what : op + ": " + what};
    for (auto& s : outputs) s->poison(error);
    std::lock_guard<std::mutex> lock(mutex_);
    if (!pending_error_) pending_error_ = error;
  }

 private:
  struct Completion {
    cudaEvent_t event = nullptr;
    std::vector<std::shared_ptr<CudaPendingCheck>> checks;
    DoneCallback done;
    std::shared_ptr<void> keep;
    bool reports = true;  // false: only waits, then drops `keep`
  };

  void add_completion(Completion completion) {
    cudaSetDevice(device_.index);
    cudaError_t status = cudaEventCreateWithFlags(&completion.event, cudaEventDisableTiming);
    if (status == cudaSuccess) status = cudaEventRecord(completion.event, stream_);
    if (status != cudaSuccess) {
      record("synchronize", ErrorKind::Runtime,
             std::string("CUDA error ") + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")", {});
      completion.event = nullptr;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      completions_.push_back(std::move(completion));
    }
    completion_ready_.notify_one();
  }

  // Waits for each sync point in order on its own thread, so a device fault
  // is reported even when host callbacks on the stream would never run.
  void completion_loop() {
    cudaSetDevice(device_.index);
    for (;;) {
      Completion completion;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        completion_ready_.wait(lock, [this] { return !completions_.empty(); });
        completion = std::move(completions_.front());
        completions_.pop_front();
      }
      if (completion.event != nullptr) {
        cudaError_t status = cudaEventSynchronize(completion.event);
        cudaEventDestroy(completion.event);
        if (status != cudaSuccess) {
          record("cuda", ErrorKind::Runtime,
                 std::string("a kernel queued before this sync failed: CUDA error ") + cudaGetErrorName(status) + " (" +
                     cudaGetErrorString(status) + ")",
                 {});
        }
      }
      completion.keep.reset();
      if (!completion.reports) continue;
      for (const auto& check : completion.checks) {
        int64_t index = *static_cast<volatile int64_t*>(check->host_word);
        check_words().release(check->host_word, check->device_word);
        if (index == kNoBadIndex) continue;
        RecordedError error{check->kind, check->describe(index)};
        for (auto& s : check->outputs) s->poison(error);
        std::lock_guard<std::mutex> lock(mutex_);
        if (!pending_error_) pending_error_ = error;
      }
      std::optional<RecordedError> error;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        error.swap(pending_error_);
      }
      completion.done(error);
    }
  }

  Device device_;
  cudaStream_t stream_ = nullptr;
  cudaMemPool_t pool_ = nullptr;
  std::mutex mutex_;
  std::condition_variable completion_ready_;
  std::deque<Completion> completions_;
  std::vector<std::shared_ptr<CudaPendingCheck>> checks_;
  std::optional<RecordedError> pending_error_;
};

std::mutex streams_mutex;
std::map<int, CudaStream*>& streams() {
  static auto* m = new std::map<int, CudaStream*>();  // leaked: completion threads outlive exit
  return *m;
}

CudaStream& get_stream(int index) {
  check_device_usable(Device{DeviceKind::CUDA, index}, "cuda", "device");
  std::lock_guard<std::mutex> lock(streams_mutex);
  auto& m = streams();
  auto it = m.find(index);
  if (it == m.end()) it = m.emplace(index, new CudaStream(index)).first;
  return *it->second;
}

std::mutex pool_stats_mutex;
std::map<int, int64_t> in_use_by_device;

}  // namespace

Stream& cuda_stream(int device_index) { return get_stream(device_index); }
void* cuda_stream_handle(int device_index) { return get_stream(device_index).handle(); }

uint64_t cuda_free_memory(int device_index) {
  size_t free_bytes = 0, total_bytes = 0;
  if (cudaSetDevice(device_index) != cudaSuccess || cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return free_bytes;
}

void* cuda_pool_allocate(int device_index, size_t bytes) {
  CudaStream& stream = get_stream(device_index);
  cudaSetDevice(device_index);
  size_t size = bytes == 0 ? 256 : bytes;
  void* data = nullptr;
  cudaError_t status = cudaMallocAsync(&data, size, stream.handle());
  if (status != cudaSuccess) {
    cudaGetLastError();
    // Give cached blocks back and try once more before reporting.
    cudaStreamSynchronize(stream.handle());
    cudaMemPoolTrimTo(stream.pool(), 0);
    if (cudaMallocAsync(&data, size, stream.handle()) != cudaSuccess) {
      cudaGetLastError();
      return nullptr;
    }
  }
  std::lock_guard<std::mutex> lock(pool_stats_mutex);
  in_use_by_device[device_index] += static_cast<int64_t>(size);
  return data;
}

void cuda_pool_release(int device_index, void* data, size_t bytes) {
  if (data == nullptr) return;
  CudaStream& stream = get_stream(device_index);
  cudaSetDevice(device_index);
  cudaFreeAsync(data, stream.handle());
  std::lock_guard<std::mutex> lock(pool_stats_mutex);
  in_use_by_device[device_index] -= static_cast<int64_t>(bytes == 0 ? 256 : bytes);
}

MemoryStats cuda_pool_stats(int device_index) {
  MemoryStats stats;
  if (!cuda_info().available) return stats;
  {
    std::lock_guard<std::mutex> lock(pool_stats_mutex);
    stats.bytes_in_use = in_use_by_device[device_index];
  }
  uint64_t reserved = 0;
  cudaMemPool_t pool;
  if (cudaDeviceGetDefaultMemPool(&pool, device_index) == cudaSuccess &&
      cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &reserved) == cudaSuccess) {
    stats.bytes_reserved = static_cast<int64_t>(reserved);
  }
  if (stats.bytes_reserved < stats.bytes_in_use) stats.bytes_reserved = stats.bytes_in_use;
  return stats;
}

void cuda_pool_empty_cache() {
  if (!cuda_info().available) return;
  std::lock_guard<std::mutex> lock(streams_mutex);
  for (auto& [index, stream] : streams()) {
    cudaSetDevice(index);
    cudaStreamSynchronize(stream->handle());
    cudaMemPoolTrimTo(stream->pool(), 0);
  }
}

}  // namespace lmk
