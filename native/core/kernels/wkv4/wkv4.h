// RWKV-4 WKV kernels (docs/kernels.md#wkv4): raw pointers and sizes; ops/wkv4.cc
// validates and schedules them. The math of one step lives in math/wkv4.h.
//
// Types: `dtype` is the storage type of k, v, y, gy, gk, gv (float32, bfloat16,
// float16, or float64 on the CPU). Everything else — timeDecay, timeFirst, the
// states and their gradients, gTimeDecay, gTimeFirst, the workspace — is in
// the accumulation type: double for float64, float otherwise.
//
// Layouts (contiguous, row-major): k, v, y, gy, gk, gv [B,T,C]; states [B,3,C]
// holding (aa, bb, pp); timeDecay, timeFirst and their gradients [C].
//
// Backward recomputes everything from (state, k, v): it replays the forward
// keeping the carried state (aa, bb, pp, pl; math/wkv4.h) every
// kWkv4Checkpoint* steps in the workspace, then walks
// the chunks last to first, replaying each into a short per-thread buffer and
// running the exact derivative of each step backwards. Memory per thread does
// not grow with T. y is not read (recomputed in the accumulation type).
#pragma once
#include <cstddef>
#include <cstdint>

#include "runtime/dtype.h"

namespace lmk::kernels {

struct Wkv4Params {
  DType dtype = DType::Float32;  // storage type of k, v, y, gy, gk, gv
  int64_t B = 0, T = 0, C = 0;   // step: T == 1 with k, v, y [B,C]

  // Inputs of every entry point.
  const void* time_decay = nullptr;  // [C]
  const void* time_first = nullptr;  // [C]
  const void* k = nullptr;
  const void* v = nullptr;
  const void* state_in = nullptr;  // [B,3,C]; nullptr: the empty state (0, 0, -1e38)

  // forward / step outputs.
  void* y = nullptr;
  void* state_out = nullptr;  // [B,3,C]

  // backward inputs and outputs.
  const void* gy = nullptr;
  const void* gstate_in = nullptr;  // [B,3,C] d(loss)/d(output state); nullptr: zero
  void* gk = nullptr;
  void* gv = nullptr;
  void* gtime_decay = nullptr;  // [C], summed over B
  void* gtime_first = nullptr;  // [C], summed over B
  void* gstate_out = nullptr;   // [B,3,C] d(loss)/d(input state); nullptr: not wanted
  // Scratch: backward wkv4_backward_workspace_bytes_cpu/_cuda(*this) bytes; CUDA
  // forward wkv4_forward_workspace_bytes_cuda(*this) bytes (nullptr when 0).
  void* workspace = nullptr;
};

// Steps between checkpoints of the backward pass (a tuning constant: results
// do not depend on it).
constexpr int64_t kWkv4CheckpointCpu = 64;
constexpr int64_t kWkv4CheckpointCuda = 32;

// Scratch the backward needs (checkpoints and per-(b,c) partial sums of
// dL/dw, dL/du), sized for the CPU or the CUDA kernel.
size_t wkv4_backward_workspace_bytes_cpu(const Wkv4Params& params);
size_t wkv4_backward_workspace_bytes_cuda(const Wkv4Params& params);

// CPU: run on the calling thread, parallel over (b, channel block).
void wkv4_forward_cpu(const Wkv4Params& params);
void wkv4_backward_cpu(const Wkv4Params& params);
void wkv4_step_cpu(const Wkv4Params& params);  // T must be 1; state_in required

// CUDA: enqueue on `stream` (a cudaStream_t). The forward picks a version:
// Serial (one thread per (b, c), walking all of T) when B·C fills the GPU or
// T is short, else Chunked (T split into chunks combined by a scan; see
// wkv4_cuda.cu), whose per-chunk states live in the workspace. Tests force
// one with KernelFamily::Wkv4Forward (kernels/test_hooks.h); set it before
// sizing the workspace. Backward and step are always one thread per (b, c).
size_t wkv4_forward_workspace_bytes_cuda(const Wkv4Params& params);
void wkv4_forward_cuda(const Wkv4Params& params, void* stream);
void wkv4_backward_cuda(const Wkv4Params& params, void* stream);
void wkv4_step_cuda(const Wkv4Params& params, void* stream);

}  // namespace lmk::kernels
