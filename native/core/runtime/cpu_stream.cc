// The CPU stream: a worker thread that runs queued tasks in order. Each task
// parallelises itself over the intra-op thread pool.
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

#include "runtime/stream.h"

namespace lmk {
namespace {

struct PendingCheck {
  std::unique_ptr<int64_t> word;
  ErrorKind kind;
  DescribeBadIndex describe;
  std::vector<StoragePtr> outputs;
};

class CpuStream final : public Stream {
 public:
  CpuStream() : worker_([this] { worker_loop(); }) { worker_.detach(); }
  const Device& device() const override { return device_; }

  void enqueue(std::string op, std::function<void()> run, std::vector<StoragePtr> uses,
               std::vector<StoragePtr> outputs) override {
    push([this, op = std::move(op), run = std::move(run), uses = std::move(uses),
          outputs = std::move(outputs)]() mutable {
      try {
        run();
      } catch (const Error& e) {
        record(op, e.kind(), e.what(), outputs);
      } catch (const std::bad_alloc&) {
        record(op, ErrorKind::Runtime, "out of memory", outputs);
      } catch (const std::exception& e) {
        record(op, ErrorKind::Runtime, e.what(), outputs);
      }
      // Drop the references here, on the worker, once the work is done.
      uses.clear();
      outputs.clear();
    });
  }

  ValueCheck add_value_check(ErrorKind kind, DescribeBadIndex describe, std::vector<StoragePtr> outputs) override {
    auto check = std::make_shared<PendingCheck>();
    check->word = std::make_unique<int64_t>(kNoBadIndex);
    check->kind = kind;
    check->describe = std::move(describe);
    check->outputs = std::move(outputs);
    ValueCheck handle{check->word.get()};
    std::lock_guard<std::mutex> lock(checks_mutex_);
    checks_.push_back(std::move(check));
    return handle;
  }

  void keep_until_done(std::shared_ptr<void> keep) override {
    push([keep = std::move(keep)]() mutable { keep.reset(); });
  }

  void when_done(DoneCallback done) override {
    std::vector<std::shared_ptr<PendingCheck>> checks;
    {
      std::lock_guard<std::mutex> lock(checks_mutex_);
      checks.swap(checks_);
    }
    push([this, done = std::move(done), checks = std::move(checks)]() {
      for (const auto& check : checks) {
        int64_t index = *check->word;
        if (index == kNoBadIndex) continue;
        RecordedError error{check->kind, check->describe(index)};
        for (auto& s : check->outputs) s->poison(error);
        set_pending(error);
      }
      std::optional<RecordedError> error;
      {
        std::lock_guard<std::mutex> lock(error_mutex_);
        error.swap(pending_error_);
      }
      done(error);
    });
  }

 private:
  void push(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(queue_mutex_);
      queue_.push_back(std::move(task));
    }
    queue_ready_.notify_one();
  }

  void worker_loop() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(queue_mutex_);
        queue_ready_.wait(lock, [this] { return !queue_.empty(); });
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();
    }
  }

  void record(const std::string& op, ErrorKind kind, const std::string& what, const std::vector<StoragePtr>& outputs) {
    std::string prefix = op + ":";
    std::string message = what.rfind(prefix, 0) == 0 ? what : op + ": " + what;
    RecordedError error{kind, message};
    for (auto& s : outputs) s->poison(error);
    set_pending(error);
  }

  void set_pending(const RecordedError& error) {
    std::lock_guard<std::mutex> lock(error_mutex_);
    if (!pending_error_) pending_error_ = error;  // report the first; later ones follow from it
  }

  Device device_{DeviceKind::CPU, 0};
  std::mutex queue_mutex_;
  std::condition_variable queue_ready_;
  std::deque<std::function<void()>> queue_;
  std::mutex error_mutex_;
  std::optional<RecordedError> pending_error_;
  std::mutex checks_mutex_;
  std::vector<std::shared_ptr<PendingCheck>> checks_;
  std::thread worker_;
};

}  // namespace

void Stream::synchronize() {
  std::promise<std::optional<RecordedError>> promise;
  auto result = promise.get_future();
  when_done([&promise](const std::optional<RecordedError>& error) { promise.set_value(error); });
  auto error = result.get();
  if (error) throw Error(error->kind, error->message);
}

Stream& stream_for(const Device& device) {
  if (device.is_cuda()) return cuda_stream(device.index);
  // Leaked on purpose: the worker thread outlives static destruction.
  static CpuStream* cpu = new CpuStream();
  return *cpu;
}

}  // namespace lmk
