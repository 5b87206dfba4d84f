#include "addon_state.h"

#include "js_convert.h"

namespace lmk::addon {
namespace {

// Instance data: owns one reference to the environment's state.
struct StateHolder {
  std::shared_ptr<AddonState> state;
};

// One promise fewer waits: the settle function stops holding the loop open at zero.
void finish_waiting(Napi::Env env, AddonState* state) {
  if (--state->waiting == 0) state->settler.Unref(env);
}

// Resolves or rejects the promise with the result in `pending`; false when the
// environment is shutting down (a terminated worker) and nobody waits.
bool settle(Napi::Env env, PendingSettle* pending) {
  try {
    Napi::HandleScope scope(env);
    if (pending->error) {
      pending->deferred.Reject(js_error(env, *pending->error).Value());
    } else if (pending->with_data) {
      pending->deferred.Resolve(typed_array_from(env, pending->host_dtype, pending->bytes));
    } else {
      pending->deferred.Resolve(env.Undefined());
    }
    return true;
  } catch (const Napi::Error&) {
    return false;
  }
}

// The ticket whose work this thread is queuing (QueuingHere), if any.
thread_local PendingSettle* queuing_here = nullptr;

}  // namespace

void settle_on_js_thread(Napi::Env env, Napi::Function, AddonState* state, PendingSettle* pending) {
  // env is null when Node drains the queue of an environment being torn down.
  if (env != nullptr) {
    state->last_loop_turn = std::chrono::steady_clock::now();
    if (settle(env, pending)) finish_waiting(env, state);
  }
  delete pending;
}

void init_addon_state(Napi::Env env) {
  auto state = std::make_shared<AddonState>();
  std::shared_ptr<SettleGate> gate = state->gate;
  state->settler =
      SettleFunction::New(env, "lmkernels.settle", 0, 1, state.get(), [gate](Napi::Env, void*, AddonState*) {
        std::lock_guard<std::mutex> lock(gate->mutex);
        gate->open = false;
      });
  state->settler.Unref(env);
  Napi::Value set_immediate = env.Global().Get("setImmediate");
  if (set_immediate.IsFunction()) state->set_immediate = Napi::Persistent(set_immediate.As<Napi::Function>());
  env.SetInstanceData<StateHolder>(new StateHolder{std::move(state)});
}

const std::shared_ptr<AddonState>& addon_state(Napi::Env env) { return env.GetInstanceData<StateHolder>()->state; }

SettleTicket::SettleTicket(Napi::Env env, bool with_data, DType host_dtype) {
  const std::shared_ptr<AddonState>& state = addon_state(env);
  gate_ = state->gate;
  settler_ = state->settler;
  pending_ = new PendingSettle{Napi::Promise::Deferred::New(env), with_data, host_dtype, {}, std::nullopt};
}

void SettleTicket::complete() const {
  if (queuing_here == pending_) {
    pending_->completed_here = true;
    return;
  }
  std::lock_guard<std::mutex> lock(gate_->mutex);
  if (!gate_->open || settler_.NonBlockingCall(pending_) != napi_ok) delete pending_;
}

void SettleTicket::cancel() const { delete pending_; }

void SettleTicket::settle_here_or_wait(Napi::Env env) const {
  AddonState* state = addon_state(env).get();
  if (!pending_->completed_here) {
    // complete() may already have posted from another thread: the settle
    // function runs on this thread only after this returns, so the count is
    // raised in time.
    if (state->waiting++ == 0) state->settler.Ref(env);
    return;
  }
  auto now = std::chrono::steady_clock::now();
  if (now - state->last_loop_turn < kLoopTurnEvery || state->set_immediate.IsEmpty()) {
    settle(env, pending_);
    delete pending_;
    return;
  }
  // Settle after the loop has turned (timers, I/O, finalizers) once.
  state->last_loop_turn = now;
  PendingSettle* pending = pending_;
  state->set_immediate.Call({Napi::Function::New(env, [pending](const Napi::CallbackInfo& info) {
    addon_state(info.Env())->last_loop_turn = std::chrono::steady_clock::now();
    settle(info.Env(), pending);
    delete pending;
  })});
}

QueuingHere::QueuingHere(PendingSettle* pending) : previous_(queuing_here) { queuing_here = pending; }
QueuingHere::~QueuingHere() { queuing_here = previous_; }

}  // namespace lmk::addon
