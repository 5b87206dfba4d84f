#include "ops/wkv4.h"

#include <string>
#include <vector>

#include "kernels/wkv4/wkv4.h"
#include "ops/tensor_ops.h"
#include "runtime/error.h"
#include "runtime/stream.h"

namespace lmk::ops {
namespace {

constexpr const char* kForward = "wkv4.forward";
constexpr const char* kBackward = "wkv4.backward";
constexpr const char* kStep = "wkv4.step";

// timeDecay, timeFirst, states and their gradients: float64 with float64 k, else float32.
DType accumulation_dtype(DType k_dtype) { return k_dtype == DType::Float64 ? DType::Float64 : DType::Float32; }

// ---- checks (each throws with the op and argument named) ----------------------

void check_present(const Tensor& t, const char* fn, const char* arg) {
  if (!t.storage) throw_type_error(fn, ": ", arg, " must be a tensor, got one without storage (disposed or unset)");
}

void check_device(const Tensor& t, const Device& device, const char* fn, const char* arg) {
  if (t.device() != device) {
    throw_type_error(fn, ": ", arg, " must be on the same device as k (", device.to_string(), "), got ",
                     t.device().to_string());
  }
}

void check_k_dtype(const Tensor& k, const char* fn) {
  switch (k.dtype) {
    case DType::Float32:
    case DType::BFloat16:
    case DType::Float16:
    case DType::Float64: return;
    default:
      throw_type_error(fn, ": k must have dtype float32, bfloat16, float16 or float64, got ", dtype_name(k.dtype));
  }
}

void check_dtype(const Tensor& t, DType expected, const char* fn, const char* arg, const char* why) {
  if (t.dtype != expected) {
    throw_type_error(fn, ": ", arg, " must have dtype ", dtype_name(expected), " ", why, ", got ", dtype_name(t.dtype));
  }
}

// "fn: arg must have shape [B,T,C] = [2,16,64] like v, got [2,16,32]"
void check_shape(const Tensor& t, const Shape& expected, const char* fn, const char* arg, const char* pattern,
                 const char* like) {
  if (t.shape != expected) {
    throw_range_error(fn, ": ", arg, " must have shape ", pattern, " = ", shape_string(expected), like, ", got ",
                      shape_string(t.shape));
  }
}

void check_rank(const Tensor& t, size_t rank, const char* fn, const char* arg, const char* pattern) {
  if (t.shape.size() != rank) {
    throw_range_error(fn, ": ", arg, " must have shape ", pattern, ", got ", shape_string(t.shape));
  }
}

// What every entry point shares: presence, device, dtypes of timeDecay,
// timeFirst, k, v, state; then shapes, with v giving B, (T,) C. Returns v's shape.
struct Common {
  Device device;
  DType acc;
  int64_t B = 0, T = 1, C = 0;
};

Common check_common(const char* fn, const Tensor& time_decay, const Tensor& time_first, const Tensor& k,
                    const Tensor& v, const Tensor* state, bool sequence) {
  check_present(time_decay, fn, "timeDecay");
  check_present(time_first, fn, "timeFirst");
  check_present(k, fn, "k");
  check_present(v, fn, "v");
  if (state) check_present(*state, fn, "state");
  Common c;
  c.device = k.device();
  check_device_usable(c.device, fn, "k");
  check_device(v, c.device, fn, "v");
  check_device(time_decay, c.device, fn, "timeDecay");
  check_device(time_first, c.device, fn, "timeFirst");
  if (state) check_device(*state, c.device, fn, "state");
  check_k_dtype(k, fn);
  if (k.dtype == DType::Float64 && c.device.is_cuda()) {
    throw_type_error(fn, ": dtype float64 is CPU-only, got k on ", c.device.to_string());
  }
  check_dtype(v, k.dtype, fn, "v", "like k");
  c.acc = accumulation_dtype(k.dtype);
  const char* acc_why = c.acc == DType::Float64 ? "(as k is float64)" : "(float32 unless k is float64)";
  check_dtype(time_decay, c.acc, fn, "timeDecay", acc_why);
  check_dtype(time_first, c.acc, fn, "timeFirst", acc_why);
  if (state) check_dtype(*state, c.acc, fn, "state", acc_why);
  if (sequence) {
    check_rank(v, 3, fn, "v", "[B,T,C]");
    check_shape(k, v.shape, fn, "k", "[B,T,C]", " like v");
    c.B = v.shape[0];
    c.T = v.shape[1];
    c.C = v.shape[2];
  } else {
    check_rank(v, 2, fn, "v", "[B,C]");
    check_shape(k, v.shape, fn, "k", "[B,C]", " like v");
    c.B = v.shape[0];
    c.C = v.shape[1];
  }
  check_shape(time_decay, {c.C}, fn, "timeDecay", "[C]", " (C from v)");
  check_shape(time_first, {c.C}, fn, "timeFirst", "[C]", " (C from v)");
  if (state) check_shape(*state, {c.B, 3, c.C}, fn, "state", "[B,3,C]", " (B, C from v)");
  return c;
}

std::vector<StoragePtr> storages(std::initializer_list<const Tensor*> tensors) {
  std::vector<StoragePtr> out;
  for (const Tensor* t : tensors) {
    if (t) out.push_back(t->storage);
  }
  return out;
}

void enqueue(const char* fn, const Device& device, const kernels::Wkv4Params& params,
             void (*cpu)(const kernels::Wkv4Params&), void (*cuda)(const kernels::Wkv4Params&, void*),
             std::vector<StoragePtr> uses, std::vector<StoragePtr> outputs) {
  Stream& stream = stream_for(device);
  if (device.is_cpu()) {
    stream.enqueue(
        fn, [params, cpu] { cpu(params); }, std::move(uses), std::move(outputs));
    return;
  }
#ifdef LMK_WITH_CUDA
  void* handle = cuda_stream_handle(device.index);
  stream.enqueue(
      fn, [params, cuda, handle] { cuda(params, handle); }, std::move(uses), std::move(outputs));
#else
  (void)cuda;
  throw_type_error(fn, ": lmkernels was built without CUDA");
#endif
}

#ifdef LMK_WITH_CUDA
constexpr auto kForwardCuda = &kernels::wkv4_forward_cuda;
constexpr auto kBackwardCuda = &kernels::wkv4_backward_cuda;
constexpr auto kStepCuda = &kernels::wkv4_step_cuda;
#else
constexpr void (*kForwardCuda)(const kernels::Wkv4Params&, void*) = nullptr;
constexpr void (*kBackwardCuda)(const kernels::Wkv4Params&, void*) = nullptr;
constexpr void (*kStepCuda)(const kernels::Wkv4Params&, void*) = nullptr;
#endif

}  // namespace

Wkv4ForwardResult wkv4_forward(const Wkv4ForwardArgs& args) {
  const Tensor* state = args.state ? &*args.state : nullptr;
  Common c = check_common(kForward, args.time_decay, args.time_first, args.k, args.v, state, true);
  Wkv4ForwardResult out;
  out.y = empty({c.B, c.T, c.C}, args.k.dtype, c.device, kForward);
  out.state = empty({c.B, 3, c.C}, c.acc, c.device, kForward);

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
  enqueue(kForward, c.device, p, &kernels::wkv4_forward_cpu, kForwardCuda,
          storages({&args.time_decay, &args.time_first, &args.k, &args.v, state, &out.y, &out.state}),
          storages({&out.y, &out.state}));
  return out;
}

Wkv4BackwardResult wkv4_backward(const Wkv4BackwardArgs& args) {
  const Tensor* state = args.state ? &*args.state : nullptr;
  const Tensor* gstate = args.gstate ? &*args.gstate : nullptr;
  check_present(args.y, kBackward, "y");
  check_present(args.gy, kBackward, "gy");
  if (gstate) check_present(*gstate, kBackward, "gState");
  Common c = check_common(kBackward, args.time_decay, args.time_first, args.k, args.v, state, true);
  check_device(args.y, c.device, kBackward, "y");
  check_device(args.gy, c.device, kBackward, "gy");
  if (gstate) check_device(*gstate, c.device, kBackward, "gState");
  check_dtype(args.y, args.k.dtype, kBackward, "y", "like k");
  check_dtype(args.gy, args.k.dtype, kBackward, "gy", "like k");
  if (gstate) check_dtype(*gstate, c.acc, kBackward, "gState", "like state (float32 unless k is float64)");
  check_shape(args.y, args.v.shape, kBackward, "y", "[B,T,C]", " like v");
  check_shape(args.gy, args.v.shape, kBackward, "gy", "[B,T,C]", " like v");
  if (gstate) check_shape(*gstate, {c.B, 3, c.C}, kBackward, "gState", "[B,3,C]", " (B, C from v)");

  Wkv4BackwardResult out;
  out.gtime_decay = empty({c.C}, c.acc, c.device, kBackward);
  out.gtime_first = empty({c.C}, c.acc, c.device, kBackward);
  out.gk = empty(args.k.shape, args.k.dtype, c.device, kBackward);
  out.gv = empty(args.k.shape, args.k.dtype, c.device, kBackward);
  if (state) out.gstate = empty({c.B, 3, c.C}, c.acc, c.device, kBackward);

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
  StoragePtr workspace = Storage::allocate(c.device, workspace_bytes, kBackward);
  p.workspace = workspace->data();

  const Tensor* gstate_out = out.gstate ? &*out.gstate : nullptr;
  std::vector<StoragePtr> uses =
      storages({&args.time_decay, &args.time_first, &args.k, &args.v, state, &args.y, &args.gy, gstate,
                &out.gtime_decay, &out.gtime_first, &out.gk, &out.gv, gstate_out});
  uses.push_back(workspace);
  enqueue(kBackward, c.device, p, &kernels::wkv4_backward_cpu, kBackwardCuda, std::move(uses),
          storages({&out.gtime_decay, &out.gtime_first, &out.gk, &out.gv, gstate_out}));
  return out;
}

Wkv4StepResult wkv4_step(const Wkv4StepArgs& args) {
  Common c = check_common(kStep, args.time_decay, args.time_first, args.k, args.v, &args.state, false);
  Wkv4StepResult out;
  out.y = empty({c.B, c.C}, args.k.dtype, c.device, kStep);
  out.state = empty({c.B, 3, c.C}, c.acc, c.device, kStep);

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
  enqueue(kStep, c.device, p, &kernels::wkv4_step_cpu, kStepCuda,
          storages({&args.time_decay, &args.time_first, &args.k, &args.v, &args.state, &out.y, &out.state}),
          storages({&out.y, &out.state}));
  return out;
}

}  // namespace lmk::ops
