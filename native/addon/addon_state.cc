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

}  // namespace

void settle_on_js_thread(Napi::Env env, Napi::Function, AddonState* state, PendingSettle* pending) {
  // env is null when Node drains the queue of an environment being torn down.
  if (env != nullptr) {
    try {
      Napi::HandleScope scope(env);
      if (pending->error) {
        pending->deferred.Reject(js_error(env, *pending->error).Value());
      } else if (pending->with_data) {
        pending->deferred.Resolve(typed_array_from(env, pending->host_dtype, pending->bytes));
      } else {
        pending->deferred.Resolve(env.Undefined());
      }
      finish_waiting(env, state);
    } catch (const Napi::Error&) {
      // The environment is shutting down (a terminated worker): nobody waits.
    }
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
  env.SetInstanceData<StateHolder>(new StateHolder{std::move(state)});
}

const std::shared_ptr<AddonState>& addon_state(Napi::Env env) { return env.GetInstanceData<StateHolder>()->state; }

SettleTicket::SettleTicket(Napi::Env env, bool with_data, DType host_dtype) {
  const std::shared_ptr<AddonState>& state = addon_state(env);
  gate_ = state->gate;
  settler_ = state->settler;
  pending_ = new PendingSettle{Napi::Promise::Deferred::New(env), with_data, host_dtype, {}, std::nullopt};
  if (state->waiting++ == 0) state->settler.Ref(env);
}

void SettleTicket::complete() const {
  std::lock_guard<std::mutex> lock(gate_->mutex);
  if (!gate_->open || settler_.NonBlockingCall(pending_) != napi_ok) delete pending_;
}

void SettleTicket::cancel(Napi::Env env) const {
  delete pending_;
  finish_waiting(env, addon_state(env).get());
}

}  // namespace lmk::addon
