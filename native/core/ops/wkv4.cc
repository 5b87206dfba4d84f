#include "ops/wkv4.h"

#include <string>
#include <vector>

#include "kernels/wkv4/wkv4.h"
#include "ops/arg_checks.h"
#include "ops/op_task.h"
#include "runtime/cuda_call.h"

namespace lmk::ops {
namespace {

constexpr const char* kForward = "wkv4.forward";
constexpr const char* kBackward = "wkv4.backward";
constexpr const char* kStep = "wkv4.step";

// What every entry point shares: presence, device, dtypes of timeDecay,
// timeFirst, k, v, state; then shapes, with v giving B, (T,) C.
struct Common {
  Device device;
  DType acc;  // timeDecay, timeFirst, states and their gradients: float64 with float64 k, else float32
  int64_t B = 0, T = 1, C = 0;
};

Common check_common(const char* fn, const Tensor& time_decay, const Tensor& time_first, const Tensor& k,
                    const Tensor& v, const Tensor* state, bool sequence) {
  check_tensor(time_decay, fn, "timeDecay");
  check_tensor(time_first, fn, "timeFirst");
  check_tensor(k, fn, "k");
  check_tensor(v, fn, "v");
  if (state) check_tensor(*state, fn, "state");
  Common c;
  c.device = k.device();
  check_device_usable(c.device, fn, "k");
  check_device(v, c.device, fn, "v", "k");
  check_device(time_decay, c.device, fn, "timeDecay", "k");
  check_device(time_first, c.device, fn, "timeFirst", "k");
  if (state) check_device(*state, c.device, fn, "state", "k");
  check_float(k, fn, "k");
  check_dtype(v, k.dtype, fn, "v", "like k");
  c.acc = accumulation_dtype(k.dtype);
  const char* acc_why = c.acc == DType::Float64 ? "(as k is float64)" : "(float32 unless k is float64)";
  check_dtype(time_decay, c.acc, fn, "timeDecay", acc_why);
  check_dtype(time_first, c.acc, fn, "timeFirst", acc_why);
  if (state) check_dtype(*state, c.acc, fn, "state", acc_why);
  if (sequence) {
    check_rank(v, 3, fn, "v", "[B,T,C]");
    check_shape(k, v.shape, fn, "k", "[B,T,C]", "like v");
    c.B = v.shape[0];
    c.T = v.shape[1];
    c.C = v.shape[2];
  } else {
    check_rank(v, 2, fn, "v", "[B,C]");
    check_shape(k, v.shape, fn, "k", "[B,C]", "like v");
    c.B = v.shape[0];
    c.C = v.shape[1];
  }
  check_shape(time_decay, {c.C}, fn, "timeDecay", "[C]", "(C from v)");
  check_shape(time_first, {c.C}, fn, "timeFirst", "[C]", "(C from v)");
  if (state) check_shape(*state, {c.B, 3, c.C}, fn, "state", "[B,3,C]", "(B, C from v)");
  return c;
}

}  // namespace

Wkv4ForwardResult wkv4_forward(const Wkv4ForwardArgs& args) {
  const Tensor* state = args.state ? &*args.state : nullptr;
  Common c = check_common(kForward, args.time_decay, args.time_first, args.k, args.v, state, true);
  OpTask task(kForward, c.device);
  Wkv4ForwardResult out;
  out.y = task.output({c.B, c.T, c.C}, args.k.dtype);
  out.state = task.output({c.B, 3, c.C}, c.acc);
  task.reads(args.time_decay, args.time_first, args.k, args.v, args.state);

  kernels::Wkv4Params p;
  p.dtype = args.k.dtype;
  p.B = c.B;
  p.T = c.T;
  p.C = c.C;
  p.time_decay = args.time_decay.data();
  p.time_first = args.time_first.data();
  p.k = args.k.data();
  p.v = args.v.data();
  p.state_in = state ? state->data() : nullptr;
  p.y = out.y.data();
  p.state_out = out.state.data();
#ifdef LMK_WITH_CUDA
  // The chunked CUDA forward keeps per-chunk states in scratch.
  if (c.device.is_cuda()) {
    const size_t workspace_bytes = kernels::wkv4_forward_workspace_bytes_cuda(p);
    if (workspace_bytes > 0) p.workspace = task.workspace(workspace_bytes);
  }
#endif
  task.may_run_inline();
  task.enqueue([p] { kernels::wkv4_forward_cpu(p); },
               [p](void* s) { LMK_CUDA_CALL(kernels::wkv4_forward_cuda(p, s)); });
  return out;
}

Wkv4BackwardResult wkv4_backward(const Wkv4BackwardArgs& args) {
  const Tensor* state = args.state ? &*args.state : nullptr;
  const Tensor* gstate = args.gstate ? &*args.gstate : nullptr;
  check_tensor(args.y, kBackward, "y");
  check_tensor(args.gy, kBackward, "gy");
  if (gstate) check_tensor(*gstate, kBackward, "gState");
  Common c = check_common(kBackward, args.time_decay, args.time_first, args.k, args.v, state, true);
  check_device(args.y, c.device, kBackward, "y", "k");
  check_device(args.gy, c.device, kBackward, "gy", "k");
  if (gstate) check_device(*gstate, c.device, kBackward, "gState", "k");
  check_dtype(args.y, args.k.dtype, kBackward, "y", "like k");
  check_dtype(args.gy, args.k.dtype, kBackward, "gy", "like k");
  if (gstate) check_dtype(*gstate, c.acc, kBackward, "gState", "like state (float32 unless k is float64)");
  check_shape(args.y, args.v.shape, kBackward, "y", "[B,T,C]", "like v");
  check_shape(args.gy, args.v.shape, kBackward, "gy", "[B,T,C]", "like v");
  if (gstate) check_shape(*gstate, {c.B, 3, c.C}, kBackward, "gState", "[B,3,C]", "(B, C from v)");

  OpTask task(kBackward, c.device);
  Wkv4BackwardResult out;
  out.gtime_decay = task.output({c.C}, c.acc);
  out.gtime_first = task.output({c.C}, c.acc);
  out.gk = task.output(args.k.shape, args.k.dtype);
  out.gv = task.output(args.k.shape, args.k.dtype);
  if (state) out.gstate = task.output({c.B, 3, c.C}, c.acc);
  task.reads(args.time_decay, args.time_first, args.k, args.v, args.state, args.y, args.gy, args.gstate);

  kernels::Wkv4Params p;
  p.dtype = args.k.dtype;
  p.B = c.B;
  p.T = c.T;
  p.C = c.C;
  p.time_decay = args.time_decay.data();
  p.time_first = args.time_first.data();
  p.k = args.k.data();
  p.v = args.v.data();
  p.state_in = state ? state->data() : nullptr;
  p.gy = args.gy.data();
  p.gstate_in = gstate ? gstate->data() : nullptr;
  p.gk = out.gk.data();
  p.gv = out.gv.data();
  p.gtime_decay = out.gtime_decay.data();
  p.gtime_first = out.gtime_first.data();
  p.gstate_out = out.gstate ? out.gstate->data() : nullptr;
  size_t workspace_bytes = kernels::wkv4_backward_workspace_bytes_cpu(p);
#ifdef LMK_WITH_CUDA
  if (c.device.is_cuda()) workspace_bytes = kernels::wkv4_backward_workspace_bytes_cuda(p);
#endif
  p.workspace = task.workspace(workspace_bytes);
  task.may_run_inline();
  task.enqueue([p] { kernels::wkv4_backward_cpu(p); },
               [p](void* s) { LMK_CUDA_CALL(kernels::wkv4_backward_cuda(p, s)); });
  return out;
}

Wkv4StepResult wkv4_step(const Wkv4StepArgs& args) {
  Common c = check_common(kStep, args.time_decay, args.time_first, args.k, args.v, &args.state, false);
  OpTask task(kStep, c.device);
  Wkv4StepResult out;
  out.y = task.output({c.B, c.C}, args.k.dtype);
  out.state = task.output({c.B, 3, c.C}, c.acc);
  task.reads(args.time_decay, args.time_first, args.k, args.v, args.state);

  kernels::Wkv4Params p;
  p.dtype = args.k.dtype;
  p.B = c.B;
  p.T = 1;
  p.C = c.C;
  p.time_decay = args.time_decay.data();
  p.time_first = args.time_first.data();
  p.k = args.k.data();
  p.v = args.v.data();
  p.state_in = args.state.data();
  p.y = out.y.data();
  p.state_out = out.state.data();
  task.may_run_inline();
  task.enqueue([p] { kernels::wkv4_step_cpu(p); }, [p](void* s) { LMK_CUDA_CALL(kernels::wkv4_step_cuda(p, s)); });
  return out;
}

}  // namespace lmk::ops
