// RWKV-4 WKV on CUDA. Version 1 (the reference on the GPU, always used for
// backward): one thread per (b, c), looping over t.
// Consecutive threads take consecutive channels, so every load and store of
// a time step is coalesced; any B·C works (the last block is guarded). The
// math is math/wkv4.h, shared with the CPU kernel.
//
// Forward: each thread loads kUnroll steps of k and v before computing them,
// so several loads per thread are in flight (the recurrence itself is serial).
//
// Version 2 of the forward (below) splits T into chunks when B·C is small.
//
// Backward: the same checkpoint/replay scheme as the CPU (kernels/wkv4/wkv4.h):
// the state every kWkv4CheckpointCuda steps goes to global memory
// ([chunk][3][B·C], coalesced), each chunk is replayed into a per-thread
// kWkv4CheckpointCuda-step array (local memory) and walked in reverse. Per
// (b, c) sums of dL/dw and dL/du go to the workspace in double; a second
// kernel sums them over b in a fixed order (no atomics, deterministic).
#include <cuda_runtime.h>

#include "kernels/cuda_launch.cuh"
#include "kernels/test_hooks.h"
#include "kernels/wkv4/wkv4.h"
#include "math/compute_type.h"
#include "math/half.h"
#include "math/wkv4.h"
#include "runtime/cuda_check.h"
#include "runtime/error.h"

namespace lmk::kernels {
namespace {

constexpr int kThreads = 128;
constexpr int kUnroll = 8;
constexpr int kChunk = static_cast<int>(kWkv4CheckpointCuda);
constexpr int kStateParts = 4;  // aa, bb, pp, pl (see math/wkv4.h)

inline unsigned blocks_for(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

// The initial carried state (pl = 0) of (b, c).
template <typename Acc>
__device__ __forceinline__ void load_state(const Acc* state, int64_t b, int64_t c, int64_t C, Acc& aa, Acc& bb, Acc& pp,
                                           Acc& pl) {
  pl = Acc(0);
  if (state) {
    aa = state[(b * 3 + 0) * C + c];
    bb = state[(b * 3 + 1) * C + c];
    pp = state[(b * 3 + 2) * C + c];
  } else {
    aa = Acc(0);
    bb = Acc(0);
    pp = wkv4_empty_pp<Acc>();
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) wkv4_forward_kernel(Wkv4Params p) {
  using Acc = compute_t<T>;
  const int64_t C = p.C, steps = p.T;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= p.B * C) return;
  const int64_t b = idx / C, c = idx - b * C;
  const Wkv4Decay<Acc> w = wkv4_decay<Acc>(static_cast<const Acc*>(p.time_decay)[c]);
  const Acc u = static_cast<const Acc*>(p.time_first)[c];
  Acc aa, bb, pp, pl;
  load_state(static_cast<const Acc*>(p.state_in), b, c, C, aa, bb, pp, pl);
  const T* __restrict__ k = static_cast<const T*>(p.k) + b * steps * C + c;
  const T* __restrict__ v = static_cast<const T*>(p.v) + b * steps * C + c;
  T* __restrict__ y = static_cast<T*>(p.y) + b * steps * C + c;
  for (int64_t t0 = 0; t0 < steps; t0 += kUnroll) {
    Acc kk[kUnroll], vv[kUnroll];
#pragma unroll
    for (int j = 0; j < kUnroll; ++j) {
      if (t0 + j < steps) {
        kk[j] = to_compute(k[(t0 + j) * C]);
        vv[j] = to_compute(v[(t0 + j) * C]);
      }
    }
#pragma unroll
    for (int j = 0; j < kUnroll; ++j) {
      if (t0 + j < steps) {
        y[(t0 + j) * C] = from_compute<T>(wkv4_output<Acc>(aa, bb, pp, pl, u, kk[j], vv[j]));
        wkv4_update<Acc>(aa, bb, pp, pl, w, kk[j], vv[j]);
      }
    }
  }
  const Wkv4Folded<Acc> fold = wkv4_fold<Acc>(pp, pl);
  Acc* state_out = static_cast<Acc*>(p.state_out);
  state_out[(b * 3 + 0) * C + c] = aa * fold.scale;
  state_out[(b * 3 + 1) * C + c] = bb * fold.scale;
  state_out[(b * 3 + 2) * C + c] = fold.pp;
}

// Workspace: part_gw [B·C], part_gu [B·C] (double), then checkpoints
// [ceil(T / kChunk)][kStateParts][B·C] (Acc).
template <typename T>
__global__ void __launch_bounds__(kThreads) wkv4_backward_kernel(Wkv4Params p) {
  using Acc = compute_t<T>;
  const int64_t C = p.C, steps = p.T, BC = p.B * p.C;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= BC) return;
  const int64_t b = idx / C, c = idx - b * C;
  double* part_gw = static_cast<double*>(p.workspace);
  double* part_gu = part_gw + BC;
  Acc* checkpoints = reinterpret_cast<Acc*>(part_gu + BC);
  const Wkv4Decay<Acc> w = wkv4_decay<Acc>(static_cast<const Acc*>(p.time_decay)[c]);
  const Acc u = static_cast<const Acc*>(p.time_first)[c];
  const Acc* state_in = static_cast<const Acc*>(p.state_in);
  Acc aa, bb, pp, pl;
  load_state(state_in, b, c, C, aa, bb, pp, pl);
  const int64_t offset = b * steps * C + c;
  const T* __restrict__ k = static_cast<const T*>(p.k) + offset;
  const T* __restrict__ v = static_cast<const T*>(p.v) + offset;
  const T* __restrict__ gy = static_cast<const T*>(p.gy) + offset;
  T* __restrict__ gk = static_cast<T*>(p.gk) + offset;
  T* __restrict__ gv = static_cast<T*>(p.gv) + offset;

  // Replay, keeping the state before every kChunk-th step.
  for (int64_t t = 0; t < steps; ++t) {
    if (t % kChunk == 0) {
      Acc* ck = checkpoints + (t / kChunk) * kStateParts * BC;
      ck[idx] = aa;
      ck[BC + idx] = bb;
      ck[2 * BC + idx] = pp;
      ck[3 * BC + idx] = pl;
    }
    wkv4_update<Acc>(aa, bb, pp, pl, w, to_compute(k[t * C]), to_compute(v[t * C]));
  }
  // Seed the adjoint from d(loss)/d(stored final state).
  const Acc* gstate_in = static_cast<const Acc*>(p.gstate_in);
  Acc gaa_out = Acc(0), gbb_out = Acc(0), gpp_out = Acc(0);
  if (gstate_in) {
    gaa_out = gstate_in[(b * 3 + 0) * C + c];
    gbb_out = gstate_in[(b * 3 + 1) * C + c];
    gpp_out = gstate_in[(b * 3 + 2) * C + c];
  }
  const Wkv4Folded<Acc> fold = wkv4_fold<Acc>(pp, pl);
  Acc gaa, gbb, gq;
  wkv4_seed_adjoint<Acc>(gaa_out, gbb_out, gpp_out, aa * fold.scale, bb * fold.scale, fold.scale, gaa, gbb, gq);
  double gw_sum = 0, gu_sum = 0;

  Acc saved_aa[kChunk], saved_bb[kChunk], saved_pp[kChunk], saved_pl[kChunk];
  const int64_t chunks = (steps + kChunk - 1) / kChunk;
  for (int64_t chunk = chunks - 1; chunk >= 0; --chunk) {
    const int64_t t0 = chunk * kChunk;
    const int len = static_cast<int>(steps - t0 < kChunk ? steps - t0 : kChunk);
    const Acc* ck = checkpoints + chunk * kStateParts * BC;
    aa = ck[idx];
    bb = ck[BC + idx];
    pp = ck[2 * BC + idx];
    pl = ck[3 * BC + idx];
    for (int j = 0; j < len; ++j) {
      saved_aa[j] = aa;
      saved_bb[j] = bb;
      saved_pp[j] = pp;
      saved_pl[j] = pl;
      wkv4_update<Acc>(aa, bb, pp, pl, w, to_compute(k[(t0 + j) * C]), to_compute(v[(t0 + j) * C]));
    }
    Acc gw_chunk = Acc(0), gu_chunk = Acc(0);
    for (int j = len - 1; j >= 0; --j) {
      const int64_t t = t0 + j;
      Acc d_k, d_v, d_w, d_u;
      wkv4_step_backward<Acc>(saved_aa[j], saved_bb[j], saved_pp[j], saved_pl[j], w, u, to_compute(k[t * C]),
                              to_compute(v[t * C]), to_compute(gy[t * C]), gaa, gbb, gq, d_k, d_v, d_w, d_u);
      gk[t * C] = from_compute<T>(d_k);
      gv[t * C] = from_compute<T>(d_v);
      gw_chunk += d_w;
      gu_chunk += d_u;
    }
    gw_sum += static_cast<double>(gw_chunk);
    gu_sum += static_cast<double>(gu_chunk);
  }
  part_gw[idx] = gw_sum;
  part_gu[idx] = gu_sum;
  Acc* gstate_out = static_cast<Acc*>(p.gstate_out);
  if (gstate_out) {
    // The adjoint of the initial state; its pp part through the sums it
    // represents (or passed through exactly when there are no steps).
    const Acc aa0 = state_in[(b * 3 + 0) * C + c];
    const Acc bb0 = state_in[(b * 3 + 1) * C + c];
    gstate_out[(b * 3 + 0) * C + c] = gaa;
    gstate_out[(b * 3 + 1) * C + c] = gbb;
    gstate_out[(b * 3 + 2) * C + c] = steps == 0 ? gpp_out : wkv4_gpp_from_gq<Acc>(gaa, gbb, gq, aa0, bb0);
  }
}

// gTimeDecay[c] = w·Σ_b gw[b,c], gTimeFirst[c] = Σ_b gu[b,c], b in order.
template <typename Acc>
__global__ void __launch_bounds__(kThreads) wkv4_reduce_kernel(Wkv4Params p) {
  const int64_t C = p.C, BC = p.B * p.C;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const double* part_gw = static_cast<const double*>(p.workspace);
  const double* part_gu = part_gw + BC;
  double sum_gw = 0, sum_gu = 0;
  for (int64_t b = 0; b < p.B; ++b) {
    sum_gw += part_gw[b * C + c];
    sum_gu += part_gu[b * C + c];
  }
  const double w = wkv4_decay<Acc>(static_cast<const Acc*>(p.time_decay)[c]).value();
  static_cast<Acc*>(p.gtime_decay)[c] = static_cast<Acc>(wkv4_time_decay_grad<double>(w, sum_gw));
  static_cast<Acc*>(p.gtime_first)[c] = static_cast<Acc>(sum_gu);
}

// ---- version 2 of the forward: T split into chunks, for small B·C ----------------
//
// With few (b, c) pairs, one thread each leaves the GPU idle while each walks
// all of T. Here T is cut into chunks of L steps (L a power of two near √T):
//   1. summaries: one thread per (chunk, b, c) runs its chunk from the empty
//      state (in parallel);
//   2. scan: one thread per (b, c) walks the chunks in order, turning the
//      summaries into each chunk's true starting state with wkv4_merge
//      (S_{j+1} = S_j decayed by L steps, plus summary j);
//   3. outputs: one thread per (chunk, b, c) replays its chunk from its
//      starting state, writing y (and the last chunk the final state).
// The same math functions as version 1; the results agree with it to
// rounding (the merge rounds differently from L single steps).
// Scratch: [chunks][kStateParts][B·C] (Acc), stream-ordered.

template <typename Acc>
struct ChunkLayout {
  Acc* states;     // [chunks][kStateParts][BC]
  int64_t chunks;  // ceil(T / len)
  int64_t len;     // L, a power of two
};

template <typename T>
__global__ void __launch_bounds__(kThreads) wkv4_chunk_summary_kernel(Wkv4Params p, ChunkLayout<compute_t<T>> lay) {
  using Acc = compute_t<T>;
  const int64_t C = p.C, steps = p.T, BC = p.B * p.C;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  // The last chunk's summary is never used (nothing follows it).
  if (idx >= BC * (lay.chunks - 1)) return;
  const int64_t chunk = idx / BC, bc = idx - chunk * BC;
  const int64_t b = bc / C, c = bc - b * C;
  const Wkv4Decay<Acc> w = wkv4_decay<Acc>(static_cast<const Acc*>(p.time_decay)[c]);
  Acc aa = Acc(0), bb = Acc(0), pp = wkv4_empty_pp<Acc>(), pl = Acc(0);
  const int64_t t0 = chunk * lay.len;
  const T* __restrict__ k = static_cast<const T*>(p.k) + (b * steps + t0) * C + c;
  const T* __restrict__ v = static_cast<const T*>(p.v) + (b * steps + t0) * C + c;
  for (int64_t j = 0; j < lay.len; ++j) {
    wkv4_update<Acc>(aa, bb, pp, pl, w, to_compute(k[j * C]), to_compute(v[j * C]));
  }
  Acc* out = lay.states + chunk * kStateParts * BC + bc;
  out[0] = aa;
  out[BC] = bb;
  out[2 * BC] = pp;
  out[3 * BC] = pl;
}

template <typename Acc>
__global__ void __launch_bounds__(kThreads) wkv4_chunk_scan_kernel(Wkv4Params p, ChunkLayout<Acc> lay) {
  const int64_t C = p.C, BC = p.B * p.C;
  const int64_t bc = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (bc >= BC) return;
  const int64_t b = bc / C, c = bc - b * C;
  const Wkv4Decay<Acc> w = wkv4_decay<Acc>(static_cast<const Acc*>(p.time_decay)[c]);
  Acc aa, bb, pp, pl;
  load_state(static_cast<const Acc*>(p.state_in), b, c, C, aa, bb, pp, pl);
  const Acc len = static_cast<Acc>(lay.len);
  for (int64_t chunk = 0; chunk < lay.chunks; ++chunk) {
    Acc* slot = lay.states + chunk * kStateParts * BC + bc;
    const Acc aa2 = slot[0], bb2 = slot[BC], pp2 = slot[2 * BC], pl2 = slot[3 * BC];
    slot[0] = aa;  // the summary's slot now holds the chunk's starting state
    slot[BC] = bb;
    slot[2 * BC] = pp;
    slot[3 * BC] = pl;
    if (chunk + 1 < lay.chunks) wkv4_merge<Acc>(aa, bb, pp, pl, w, len, aa2, bb2, pp2, pl2);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) wkv4_chunk_output_kernel(Wkv4Params p, ChunkLayout<compute_t<T>> lay) {
  using Acc = compute_t<T>;
  const int64_t C = p.C, steps = p.T, BC = p.B * p.C;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= BC * lay.chunks) return;
  const int64_t chunk = idx / BC, bc = idx - chunk * BC;
  const int64_t b = bc / C, c = bc - b * C;
  const Wkv4Decay<Acc> w = wkv4_decay<Acc>(static_cast<const Acc*>(p.time_decay)[c]);
  const Acc u = static_cast<const Acc*>(p.time_first)[c];
  const Acc* start = lay.states + chunk * kStateParts * BC + bc;
  Acc aa = start[0], bb = start[BC], pp = start[2 * BC], pl = start[3 * BC];
  const int64_t t0 = chunk * lay.len;
  const int64_t len = steps - t0 < lay.len ? steps - t0 : lay.len;
  const int64_t offset = (b * steps + t0) * C + c;
  const T* __restrict__ k = static_cast<const T*>(p.k) + offset;
  const T* __restrict__ v = static_cast<const T*>(p.v) + offset;
  T* __restrict__ y = static_cast<T*>(p.y) + offset;
  for (int64_t j = 0; j < len; ++j) {
    const Acc kk = to_compute(k[j * C]), vv = to_compute(v[j * C]);
    y[j * C] = from_compute<T>(wkv4_output<Acc>(aa, bb, pp, pl, u, kk, vv));
    wkv4_update<Acc>(aa, bb, pp, pl, w, kk, vv);
  }
  if (chunk + 1 == lay.chunks) {
    const Wkv4Folded<Acc> fold = wkv4_fold<Acc>(pp, pl);
    Acc* state_out = static_cast<Acc*>(p.state_out);
    state_out[(b * 3 + 0) * C + c] = aa * fold.scale;
    state_out[(b * 3 + 1) * C + c] = bb * fold.scale;
    state_out[(b * 3 + 2) * C + c] = fold.pp;
  }
}

template <typename Fn>
void dispatch_cuda_dtype(DType dtype, const char* what, Fn&& fn) {
  switch (dtype) {
    case DType::Float32: fn(float{}); break;
    case DType::BFloat16: fn(bf16{}); break;
    case DType::Float16: fn(f16{}); break;
    default: throw_type_error(what, ": unsupported dtype on CUDA: ", dtype_name(dtype));
  }
}

void launch_serial_forward(const Wkv4Params& params, cudaStream_t stream, const char* what) {
  const int64_t n = params.B * params.C;
  if (n == 0) return;
  dispatch_cuda_dtype(params.dtype, what, [&](auto tag) {
    launch(wkv4_forward_kernel<decltype(tag)>, blocks_for(n, kThreads), kThreads, 0, stream, params);
  });
  cuda_check_launch(what);
}

// The chunk states [chunks, kStateParts, B·C] are the caller's workspace
// (wkv4_forward_workspace_bytes_cuda).
void launch_chunked_forward(const Wkv4Params& params, cudaStream_t stream, int64_t len, const char* what) {
  const int64_t bc = params.B * params.C;
  if (!params.workspace) throw_runtime_error(what, ": the chunked forward was given no workspace");
  ChunkLayout<float> lay{static_cast<float*>(params.workspace), (params.T + len - 1) / len, len};
  dispatch_cuda_dtype(params.dtype, what, [&](auto tag) {
    using T = decltype(tag);
    if (lay.chunks > 1) {
      launch(wkv4_chunk_summary_kernel<T>, blocks_for(bc * (lay.chunks - 1), kThreads), kThreads, 0, stream, params,
             lay);
    }
    launch(wkv4_chunk_scan_kernel<float>, blocks_for(bc, kThreads), kThreads, 0, stream, params, lay);
    launch(wkv4_chunk_output_kernel<T>, blocks_for(bc * lay.chunks, kThreads), kThreads, 0, stream, params, lay);
  });
  cuda_check_launch(what);
}

// Version 1 has one thread per (b, c); below ~kSerialMinThreads of them the
// GPU is mostly idle, so long sequences go to version 2, with chunks of about
// √T steps (balancing the chunk walks against the scan over chunks).
constexpr int64_t kSerialMinThreads = 16384;

int64_t chunk_length(int64_t T) {
  int64_t len = 32;
  while (len * len < T && len < 4096) len *= 2;
  return len;
}

// Whether the forward runs chunked: by shape, unless a test forces a version.
// With no (b, c) or T = 0 (just the state) there is nothing to chunk.
bool forward_is_chunked(const Wkv4Params& params) {
  if (params.B * params.C == 0 || params.T == 0) return false;
  switch (test_kernel_variant(KernelFamily::Wkv4Forward)) {
    case KernelVariant::Serial: return false;
    case KernelVariant::Chunked: return true;
    default: return params.B * params.C < kSerialMinThreads && params.T >= 4 * chunk_length(params.T);
  }
}

}  // namespace

size_t wkv4_backward_workspace_bytes_cuda(const Wkv4Params& params) {
  const int64_t bc = params.B * params.C;
  const int64_t chunks = (params.T + kChunk - 1) / kChunk;
  const size_t acc_size = params.dtype == DType::Float64 ? sizeof(double) : sizeof(float);
  return static_cast<size_t>(2 * bc) * sizeof(double) + static_cast<size_t>(chunks * kStateParts * bc) * acc_size;
}

size_t wkv4_forward_workspace_bytes_cuda(const Wkv4Params& params) {
  if (!forward_is_chunked(params)) return 0;
  const int64_t len = chunk_length(params.T), chunks = (params.T + len - 1) / len;
  return static_cast<size_t>(chunks * kStateParts * params.B * params.C) * sizeof(float);
}

void wkv4_forward_cuda(const Wkv4Params& params, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  if (forward_is_chunked(params)) {
    launch_chunked_forward(params, s, chunk_length(params.T), "wkv4.forward");
  } else {
    launch_serial_forward(params, s, "wkv4.forward");
  }
}

void wkv4_step_cuda(const Wkv4Params& params, void* stream) {
  launch_serial_forward(params, static_cast<cudaStream_t>(stream), "wkv4.step");
}

void wkv4_backward_cuda(const Wkv4Params& params, void* stream) {
  const int64_t n = params.B * params.C;
  auto s = static_cast<cudaStream_t>(stream);
  dispatch_cuda_dtype(params.dtype, "wkv4.backward", [&](auto tag) {
    if (n > 0) launch(wkv4_backward_kernel<decltype(tag)>, blocks_for(n, kThreads), kThreads, 0, s, params);
  });
  cuda_check_launch("wkv4.backward");
  if (params.C > 0) {
    launch(wkv4_reduce_kernel<float>, blocks_for(params.C, kThreads), kThreads, 0, s, params);
    cuda_check_launch("wkv4.backward");
  }
}

}  // namespace lmk::kernels
