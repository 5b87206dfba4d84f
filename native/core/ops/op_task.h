// The plumbing every op in core/ops shares to queue its kernel: one OpTask
// per call, built after the arguments are validated (ops/arg_checks.h).
//
//   OpTask task(fn, x.device());
//   Tensor y = task.output(x.shape, x.dtype);      // allocated now; kept alive and
//                                                  // poisoned on failure automatically
//   task.reads(x, optional_weight);                // kept alive until the kernel ran
//   p.workspace = task.workspace(bytes);           // scratch, freed after the kernel
//   p.first_bad = task.value_check(kind, describe);  // a word the kernel reports into
//   task.may_run_inline();                         // a pure computation (see below)
//   task.enqueue([p] { kernels::k_cpu(p); }, [p](void* s) { LMK_CUDA_CALL(kernels::k_cuda(p, s)); });
//
// enqueue picks the backend from the device: the CPU lambda runs on the CPU
// stream's worker, the CUDA lambda gets the device's cudaStream_t (as void*).
// A task that called may_run_inline() and touches at most kInlineBytes runs
// on the calling thread instead when the CPU stream is idle (Placement::
// InlineWhenIdle): the same order and results, without the hop to the worker.
// Only a kernel that computes from its memory and waits on nothing may opt in
// (never a collective).
// Declare every output before the first value check: a check poisons the
// outputs known when it is made.
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/stream.h"
#include "runtime/tensor.h"

namespace lmk::ops {

// Where a CPU task that only computes and touches `bytes` may run: on the
// calling thread when the stream is idle if it is small (OpTask::kInlineBytes).
Placement compute_placement(size_t bytes);

class OpTask {
 public:
  OpTask(const char* fn, const Device& device) : fn_(fn), device_(device) {
    uses_.reserve(4);  // most ops: two inputs and an output, no reallocation
    outputs_.reserve(2);
  }
  OpTask(const OpTask&) = delete;
  OpTask& operator=(const OpTask&) = delete;

  const char* fn() const { return fn_.c_str(); }
  const Device& device() const { return device_; }

  // A new tensor on the task's device that the kernel writes.
  Tensor output(const Shape& shape, DType dtype);
  // An existing tensor the kernel writes in place (in-place ops).
  void writes(const Tensor& t);

  // Tensors the kernel reads: kept alive until it has run. Absent optionals
  // and tensors without storage are skipped.
  void read(const Tensor& t);
  void read(const std::optional<Tensor>& t);
  template <typename... Tensors>
  void reads(const Tensors&... tensors) {
    (read(tensors), ...);
  }

  // `bytes` of scratch memory on the task's device, freed after the kernel.
  void* workspace(size_t bytes);

  // A word for the kernel to report the smallest offending index into (atomic
  // min; kNoBadIndex means none). At the next sync a set word becomes an error
  // of `kind` with the message describe(index), and every output is poisoned.
  int64_t* value_check(ErrorKind kind, DescribeBadIndex describe);

  // The kernel only computes from the task's memory (waits on no other
  // thread, process or device): when it is small it may run on the calling
  // thread while the CPU stream is idle.
  void may_run_inline() { may_run_inline_ = true; }

  // Inputs, outputs and scratch of at most this many bytes make a task small:
  // running it costs about what waking the worker would.
  static constexpr size_t kInlineBytes = 64 * 1024;

  // Queues the kernel on the device's stream; call once, last.
  template <typename Cpu, typename Cuda>
  void enqueue(Cpu&& cpu, Cuda&& cuda) {
    Stream& stream = stream_for(device_);
    if (device_.is_cpu()) {
      stream.enqueue(fn_, std::forward<Cpu>(cpu), std::move(uses_), std::move(outputs_), cpu_placement());
      return;
    }
    void* handle = cuda_stream_handle(device_.index);
    stream.enqueue(
        fn_, [cuda = std::forward<Cuda>(cuda), handle]() { cuda(handle); }, std::move(uses_), std::move(outputs_));
  }

 private:
  Placement cpu_placement() const;

  std::string fn_;
  Device device_;
  std::vector<StoragePtr> uses_;
  std::vector<StoragePtr> outputs_;
  bool checked_ = false;  // a value check exists: no more outputs
  bool may_run_inline_ = false;
};

}  // namespace lmk::ops
