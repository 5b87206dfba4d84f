// The CPU stream: a worker thread that runs queued tasks in order. Each task
// parallelises itself over the intra-op thread pool. A small task
// (Placement::InlineWhenIdle) and a sync point run on the calling thread when
// nothing is queued or running: one task at a time, in order, as on the
// worker, without waking it. The worker spins briefly before it sleeps, so a
// burst of queued tasks does not pay a futex wake for each.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

#include "runtime/stream.h"
#include "runtime/thread_pool.h"

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

  void enqueue(std::string op, std::function<void()> run, std::vector<StoragePtr> uses, std::vector<StoragePtr> outputs,
               Placement placement) override {
    if (placement == Placement::InlineWhenIdle) {
      InlineTurn turn(*this);
      if (turn.taken) {
        SerialParallelFor serial;  // a small task: waking the pool would cost more
        run_recording_errors(op, run, outputs);
        return;  // the references go with the arguments, after the work
      }
    }
    push([this, op = std::move(op), run = std::move(run), uses = std::move(uses),
          outputs = std::move(outputs)]() mutable {
      run_recording_errors(op, run, outputs);
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
    auto report = [this, done = std::move(done), checks = std::move(checks)]() {
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
    };
    InlineTurn turn(*this);
    if (turn.taken) {
      report();
    } else {
      push(std::move(report));
    }
  }

 private:
  // The right to run one task on the calling thread: taken when nothing is
  // queued or running, and then the worker waits until it is handed back.
  struct InlineTurn {
    explicit InlineTurn(CpuStream& s) : stream(s) {
      std::lock_guard<std::mutex> lock(stream.queue_mutex_);
      taken = !stream.busy_ && stream.queue_.empty();
      if (taken) stream.set_busy(true);
    }
    ~InlineTurn() {
      if (!taken) return;
      bool wake;
      {
        std::lock_guard<std::mutex> lock(stream.queue_mutex_);
        stream.set_busy(false);
        wake = !stream.queue_.empty() && stream.worker_sleeping_;
      }
      if (wake) stream.queue_ready_.notify_one();
    }
    InlineTurn(const InlineTurn&) = delete;
    InlineTurn& operator=(const InlineTurn&) = delete;
    CpuStream& stream;
    bool taken = false;
  };

  void run_recording_errors(const std::string& op, const std::function<void()>& run,
                            const std::vector<StoragePtr>& outputs) {
    try {
      run();
    } catch (const Error& e) {
      record(op, e.kind(), e.what(), outputs);
    } catch (const std::bad_alloc&) {
      record(op, ErrorKind::Runtime, "out of memory", outputs);
    } catch (const std::exception& e) {
      record(op, ErrorKind::Runtime, e.what(), outputs);
    }
  }

  // Under queue_mutex_; the atomic copies let the spinning worker poll without the lock.
  void set_busy(bool busy) {
    busy_ = busy;
    can_start_.store(!busy_ && !queue_.empty(), std::memory_order_release);
  }

  void push(std::function<void()> task) {
    bool wake;
    {
      std::lock_guard<std::mutex> lock(queue_mutex_);
      queue_.push_back(std::move(task));
      can_start_.store(!busy_, std::memory_order_release);
      wake = worker_sleeping_ && !busy_;
    }
    if (wake) queue_ready_.notify_one();
  }

  // Polls for work for up to kSpin before the worker sleeps on the condition
  // variable: tasks queued back to back then cost no futex wake each.
  void spin_for_work() {
    constexpr auto kSpin = std::chrono::microseconds(50);
    auto until = std::chrono::steady_clock::now() + kSpin;
    for (int i = 0;; ++i) {
      if (can_start_.load(std::memory_order_acquire)) return;
      if ((i & 63) == 63 && std::chrono::steady_clock::now() >= until) return;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
  }

  void worker_loop() {
    for (;;) {
      spin_for_work();
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(queue_mutex_);
        while (busy_ || queue_.empty()) {
          worker_sleeping_ = true;
          queue_ready_.wait(lock);
          worker_sleeping_ = false;
        }
        task = std::move(queue_.front());
        queue_.pop_front();
        set_busy(true);
      }
      task();
      task = nullptr;  // the task's references go before the next one may start
      std::lock_guard<std::mutex> lock(queue_mutex_);
      set_busy(false);
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
  bool busy_ = false;                   // a task runs (on the worker or inline)
  bool worker_sleeping_ = false;        // the worker waits on queue_ready_
  std::atomic<bool> can_start_{false};  // !busy_ && !queue_.empty()
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
