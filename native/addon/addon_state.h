// What the addon keeps per Node environment (the main thread and each
// worker_threads Worker load the addon into an environment of their own):
// its table of tensor handles and the one thread-safe function that
// settles promises (data(), synchronize()) on that environment's JS thread.
// It is Node-API instance data, never a static, so environments do not see
// each other's tensors and a worker that exits takes its state with it.
#pragma once
#include <napi.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "runtime/dtype.h"
#include "runtime/error.h"
#include "tensor_handle.h"

namespace lmk::addon {

// A promise waiting for the device, settled on the JS thread.
struct PendingSettle {
  Napi::Promise::Deferred deferred;
  bool with_data;              // false: resolve with undefined (synchronize)
  DType host_dtype;            // with data: the typed array to resolve with
  std::vector<uint8_t> bytes;  // with data: the values
  std::optional<RecordedError> error;
  bool completed_here = false;  // complete() ran on the JS thread while queuing
};

struct AddonState;
void settle_on_js_thread(Napi::Env env, Napi::Function, AddonState* state, PendingSettle* pending);
using SettleFunction = Napi::TypedThreadSafeFunction<AddonState, PendingSettle, settle_on_js_thread>;

// Open while the environment's settle function exists. Background threads
// hand a promise to the settle function only under this lock and while it is
// open, so none touches the function after Node has torn the environment down.
struct SettleGate {
  std::mutex mutex;
  bool open = true;
};

// The longest a JS thread that awaits only promises settled at once runs
// without a turn of its event loop.
constexpr std::chrono::milliseconds kLoopTurnEvery{10};

struct AddonState {
  TensorTable tensors;     // the handles made here (tensor_handle.h)
  SettleFunction settler;  // refed while promises wait, so the loop stays alive
  std::shared_ptr<SettleGate> gate = std::make_shared<SettleGate>();
  int64_t waiting = 0;  // promises not yet settled (JS thread only)
  // When the event loop last turned, as far as we know (JS thread only): a
  // promise settled at once waits for a setImmediate now and then, so that a
  // loop awaiting only such promises lets timers, I/O and finalizers run.
  std::chrono::steady_clock::time_point last_loop_turn = std::chrono::steady_clock::now();
  Napi::FunctionReference set_immediate;  // the environment's global setImmediate
};

// Sets up the state of `env`; called once from the module's init.
void init_addon_state(Napi::Env env);

// The state of `env`.
const std::shared_ptr<AddonState>& addon_state(Napi::Env env);

// A promise to settle from another thread. Made on the JS thread; exactly one
// of complete() (any thread, once the result is in `pending`) or cancel() (JS
// thread, when the work could not be queued) must follow. A ticket completed
// on the JS thread while its work is being queued (the CPU stream was idle and
// did the work at once) settles before settle_later returns, without the
// round trip through the thread-safe function; after a setImmediate when the
// event loop has not turned for kLoopTurnEvery.
class SettleTicket {
 public:
  SettleTicket(Napi::Env env, bool with_data, DType host_dtype);
  Napi::Promise promise() const { return pending_->deferred.Promise(); }
  PendingSettle* pending() const { return pending_; }
  void complete() const;
  void cancel() const;
  // After the work was queued: settles now if complete() already ran here,
  // else keeps the loop alive until the settle function runs.
  void settle_here_or_wait(Napi::Env env) const;

 private:
  std::shared_ptr<SettleGate> gate_;
  SettleFunction settler_;
  PendingSettle* pending_;
};

// Marks the JS thread as queuing `pending`'s work, so that complete() called
// meanwhile on this thread records the result instead of posting it.
class QueuingHere {
 public:
  explicit QueuingHere(PendingSettle* pending);
  ~QueuingHere();
  QueuingHere(const QueuingHere&) = delete;
  QueuingHere& operator=(const QueuingHere&) = delete;

 private:
  PendingSettle* previous_;
};

// A promise for work queued by start(ticket), which hands the ticket to
// the work's completion; the ticket is cancelled if start throws.
template <typename Start>
Napi::Promise settle_later(Napi::Env env, bool with_data, DType host_dtype, Start&& start) {
  SettleTicket ticket(env, with_data, host_dtype);
  Napi::Promise promise = ticket.promise();
  try {
    QueuingHere here(ticket.pending());
    start(ticket);
  } catch (...) {
    ticket.cancel();
    throw;
  }
  ticket.settle_here_or_wait(env);
  return promise;
}

}  // namespace lmk::addon
