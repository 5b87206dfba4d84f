// One in-order stream per device. An op validates its arguments on the calling
// (JS) thread, allocates its outputs, then enqueues its kernel here and
// returns at once.
//   CPU:  `run` executes later on the stream's worker thread, in order; a
//         task enqueued with Placement::InlineWhenIdle runs at once on the
//         calling thread instead when nothing is queued or running (the same
//         order and results, without the hop to the worker).
//   CUDA: `run` executes now on the calling thread and only launches work on
//         the device's cudaStream_t, which keeps the order.
// Failures surface at the next sync point (when_done): a thrown lmk::Error or
// a CUDA launch error is recorded with the op's name and poisons the op's
// outputs; a value check (an invalid label found by a kernel) is inspected at
// the sync point. Once reported the error is cleared and the stream is usable.
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/device.h"
#include "runtime/error.h"
#include "runtime/storage.h"

namespace lmk {

// Kernels record the smallest offending flat index here (atomic min); the
// sentinel means "no error". On CUDA the word lives in mapped host memory.
constexpr int64_t kNoBadIndex = std::numeric_limits<int64_t>::max();

struct ValueCheck {
  int64_t* first_bad_index = nullptr;  // pointer the kernel writes (device-visible)
};

// Where a CPU task may run. Worker: on the stream's worker thread (the
// default, and the only choice for a task that may wait on another thread,
// process or device, such as a collective). InlineWhenIdle: a short, pure
// computation that may run on the calling thread when the stream is idle.
// CUDA streams ignore it (their tasks only launch work).
enum class Placement { Worker, InlineWhenIdle };

using DescribeBadIndex = std::function<std::string(int64_t)>;
using DoneCallback = std::function<void(const std::optional<RecordedError>&)>;

class Stream {
 public:
  virtual ~Stream() = default;
  virtual const Device& device() const = 0;

  // `uses` are kept alive until the work finishes; `outputs` are poisoned if it
  // fails. `op` names the work in its error; the stream keeps its own copy.
  virtual void enqueue(std::string op, std::function<void()> run, std::vector<StoragePtr> uses,
                       std::vector<StoragePtr> outputs, Placement placement = Placement::Worker) = 0;

  // A word for the next enqueued kernel to report the first bad index into.
  // At the next sync point a set word becomes a RangeError (`kind`) with the
  // message `describe(index)`, and `outputs` are poisoned.
  virtual ValueCheck add_value_check(ErrorKind kind, DescribeBadIndex describe, std::vector<StoragePtr> outputs) = 0;

  // After all earlier work: done(first error since the last report, if any).
  // Runs on a background thread, or at once on the calling thread when the
  // CPU stream is idle; the error is cleared once handed over.
  virtual void when_done(DoneCallback done) = 0;

  // Holds `keep` until all earlier work has finished; reports nothing.
  virtual void keep_until_done(std::shared_ptr<void> keep) = 0;

  // Blocks the caller until when_done fires; throws the error, if any.
  void synchronize();
};

Stream& stream_for(const Device& device);

// For CUDA only (cuda_runtime.cc); the CPU build throws.
Stream& cuda_stream(int device_index);
void* cuda_stream_handle(int device_index);  // cudaStream_t

}  // namespace lmk
