// RWKV-4 WKV on the CPU. Work is split over (b, block of kBlock channels); a
// task walks all T steps of its block, and the inner loop runs over the
// block's channels — contiguous in [B,T,C], independent, branch-free — so the
// compiler vectorises it (the exp is math/wkv4.h's polynomial, not libm).
// The hot functions are compiled for AVX-512, AVX2 and baseline x86-64 and
// picked at load time (target_clones), never -march=native.
//
// Backward (see kernels/wkv4/wkv4.h): per task, a forward replay stores the
// state every kWkv4CheckpointCpu steps in the workspace; then chunks are
// processed last to first: replay the chunk into a kWkv4CheckpointCpu-step
// local buffer and run wkv4_step_backward over it in reverse. Partial sums of
// dL/dw and dL/du per (b, c) go to the workspace (in double) and are summed
// over b in a fixed order afterwards, so results do not depend on threading.
// Without this, GCC threads jumps through the selects of the exp and the
// max, duplicates floating-point operations into the branches, and then may
// not if-convert them back (they "could trap"), leaving the loops scalar. We
// never read FP exception flags, so nothing observable changes. Applies to
// everything defined below, the inlined math/ functions included.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include <algorithm>
#include <vector>

#include "kernels/wkv4/wkv4.h"
#include "math/half.h"
#include "math/wkv4.h"
#include "runtime/error.h"
#include "runtime/thread_pool.h"

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define LMK_WKV4_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LMK_WKV4_CLONES
#endif
#if defined(__GNUC__)
#define LMK_WKV4_INLINE inline __attribute__((always_inline))
#else
#define LMK_WKV4_INLINE inline
#endif

namespace lmk::kernels {
namespace {

constexpr int64_t kBlock = 64;  // channels per task: four AVX-512 vectors of floats
constexpr int64_t kChunk = kWkv4CheckpointCpu;

// One task's view of the tensors: offsets applied, strides in elements.
template <typename T>
struct Block {
  using Acc = typename Wkv4Acc<T>::type;
  const T* k;  // &k[b, 0, c0]; step t at k[t * C]
  const T* v;
  T* y;
  const T* gy;
  T* gk;
  T* gv;
  int64_t T_steps;
  int64_t C;
  int64_t n;  // channels in this block (<= kBlock)
  const Acc* w;
  const Acc* u;
  Acc* aa;  // the running state, [kBlock] each
  Acc* bb;
  Acc* pp;
  // backward only
  Acc* checkpoints;  // [ceil(T/kChunk)][3][kBlock]
  Acc* replay;       // [kChunk][3][kBlock]
  Acc* gaa;          // adjoint of the running state, [kBlock] each
  Acc* gbb;
  Acc* gq;
  double* gw;  // per-channel sums over t, [kBlock] each
  double* gu;
};

template <typename T>
LMK_WKV4_INLINE void forward_block(const Block<T>& blk) {
  using Acc = typename Wkv4Acc<T>::type;
  const int64_t n = blk.n, C = blk.C;
  Acc* __restrict aa = blk.aa;
  Acc* __restrict bb = blk.bb;
  Acc* __restrict pp = blk.pp;
  const Acc* __restrict w = blk.w;
  const Acc* __restrict u = blk.u;
  for (int64_t t = 0; t < blk.T_steps; ++t) {
    const T* __restrict kt = blk.k + t * C;
    const T* __restrict vt = blk.v + t * C;
    T* __restrict yt = blk.y + t * C;
    for (int64_t i = 0; i < n; ++i) {
      Acc kk = wkv4_load(kt[i]), vv = wkv4_load(vt[i]);
      Acc a = aa[i], b = bb[i], p = pp[i];
      yt[i] = wkv4_store<T>(wkv4_output<Acc>(a, b, p, u[i], kk, vv));
      wkv4_update<Acc>(a, b, p, w[i], kk, vv);
      aa[i] = a;
      bb[i] = b;
      pp[i] = p;
    }
  }
}

// The state before each of `steps` steps from t0 goes to `saved` ([steps][3][kBlock]
// when stride is 3*kBlock); the running state advances past them.
template <typename T>
LMK_WKV4_INLINE void replay(const Block<T>& blk, int64_t t0, int64_t steps, int64_t every, typename Wkv4Acc<T>::type* saved) {
  using Acc = typename Wkv4Acc<T>::type;
  const int64_t n = blk.n, C = blk.C;
  Acc* __restrict aa = blk.aa;
  Acc* __restrict bb = blk.bb;
  Acc* __restrict pp = blk.pp;
  const Acc* __restrict w = blk.w;
  for (int64_t j = 0; j < steps; ++j) {
    if (j % every == 0) {
      Acc* __restrict s = saved + (j / every) * 3 * kBlock;
      for (int64_t i = 0; i < n; ++i) {
        s[i] = aa[i];
        s[kBlock + i] = bb[i];
        s[2 * kBlock + i] = pp[i];
      }
    }
    const T* __restrict kt = blk.k + (t0 + j) * C;
    const T* __restrict vt = blk.v + (t0 + j) * C;
    for (int64_t i = 0; i < n; ++i) {
      Acc a = aa[i], b = bb[i], p = pp[i];
      wkv4_update<Acc>(a, b, p, w[i], wkv4_load(kt[i]), wkv4_load(vt[i]));
      aa[i] = a;
      bb[i] = b;
      pp[i] = p;
    }
  }
}

// On entry: the running state is the initial one, the adjoint holds the seed
// from gState (or zeros); on exit the adjoint is that of the initial state.
template <typename T>
LMK_WKV4_INLINE void backward_block(const Block<T>& blk, bool has_gstate, const typename Wkv4Acc<T>::type* gstate) {
  using Acc = typename Wkv4Acc<T>::type;
  const int64_t n = blk.n, C = blk.C, steps = blk.T_steps;
  const int64_t chunks = (steps + kChunk - 1) / kChunk;
  replay(blk, 0, steps, kChunk, blk.checkpoints);
  // Seed: (gaa, gbb, gpp) of the final state -> (gaa, gbb, gq).
  for (int64_t i = 0; i < n; ++i) {
    Acc ga = has_gstate ? gstate[i] : Acc(0);
    Acc gb = has_gstate ? gstate[C + i] : Acc(0);
    Acc gp = has_gstate ? gstate[2 * C + i] : Acc(0);
    blk.gaa[i] = ga;
    blk.gbb[i] = gb;
    blk.gq[i] = wkv4_gq_from_gpp<Acc>(ga, gb, gp, blk.aa[i], blk.bb[i]);
    blk.gw[i] = 0;
    blk.gu[i] = 0;
  }
  Acc gw_chunk[kBlock], gu_chunk[kBlock];
  for (int64_t chunk = chunks - 1; chunk >= 0; --chunk) {
    const int64_t t0 = chunk * kChunk;
    const int64_t len = std::min(kChunk, steps - t0);
    const Acc* ck = blk.checkpoints + chunk * 3 * kBlock;
    for (int64_t i = 0; i < n; ++i) {
      blk.aa[i] = ck[i];
      blk.bb[i] = ck[kBlock + i];
      blk.pp[i] = ck[2 * kBlock + i];
      gw_chunk[i] = 0;
      gu_chunk[i] = 0;
    }
    replay(blk, t0, len, 1, blk.replay);
    Acc* __restrict gaa = blk.gaa;
    Acc* __restrict gbb = blk.gbb;
    Acc* __restrict gq = blk.gq;
    const Acc* __restrict w = blk.w;
    const Acc* __restrict u = blk.u;
    for (int64_t j = len - 1; j >= 0; --j) {
      const int64_t t = t0 + j;
      const Acc* __restrict s = blk.replay + j * 3 * kBlock;
      const T* __restrict kt = blk.k + t * C;
      const T* __restrict vt = blk.v + t * C;
      const T* __restrict gyt = blk.gy + t * C;
      T* __restrict gkt = blk.gk + t * C;
      T* __restrict gvt = blk.gv + t * C;
      for (int64_t i = 0; i < n; ++i) {
        Acc ga = gaa[i], gb = gbb[i], g_q = gq[i];
        Acc gk, gv, gw, gu;
        wkv4_step_backward<Acc>(s[i], s[kBlock + i], s[2 * kBlock + i], w[i], u[i], wkv4_load(kt[i]),
                                wkv4_load(vt[i]), wkv4_load(gyt[i]), ga, gb, g_q, gk, gv, gw, gu);
        gaa[i] = ga;
        gbb[i] = gb;
        gq[i] = g_q;
        gkt[i] = wkv4_store<T>(gk);
        gvt[i] = wkv4_store<T>(gv);
        gw_chunk[i] += gw;
        gu_chunk[i] += gu;
      }
    }
    // Chunk sums (<= kChunk terms in Acc) into double totals.
    for (int64_t i = 0; i < n; ++i) {
      blk.gw[i] += static_cast<double>(gw_chunk[i]);
      blk.gu[i] += static_cast<double>(gu_chunk[i]);
    }
  }
}

// The multi-versioned entry points, one per storage type (the templates
// above are inlined into each clone and compiled for its instruction set).
LMK_WKV4_CLONES void forward_block_isa(const Block<float>& blk) { forward_block(blk); }
LMK_WKV4_CLONES void forward_block_isa(const Block<bf16>& blk) { forward_block(blk); }
LMK_WKV4_CLONES void forward_block_isa(const Block<f16>& blk) { forward_block(blk); }
void forward_block_isa(const Block<double>& blk) { forward_block(blk); }

LMK_WKV4_CLONES void backward_block_isa(const Block<float>& blk, bool has_gstate, const float* gstate) {
  backward_block(blk, has_gstate, gstate);
}
LMK_WKV4_CLONES void backward_block_isa(const Block<bf16>& blk, bool has_gstate, const float* gstate) {
  backward_block(blk, has_gstate, gstate);
}
LMK_WKV4_CLONES void backward_block_isa(const Block<f16>& blk, bool has_gstate, const float* gstate) {
  backward_block(blk, has_gstate, gstate);
}
void backward_block_isa(const Block<double>& blk, bool has_gstate, const double* gstate) {
  backward_block(blk, has_gstate, gstate);
}

int64_t channel_blocks(int64_t C) { return (C + kBlock - 1) / kBlock; }
int64_t checkpoint_count(int64_t T) { return (T + kChunk - 1) / kChunk; }

// Tasks per parallel chunk: at least ~64k element-steps each, so short
// sequences (step, T = 1) do not pay for waking the pool.
int64_t task_grain(int64_t T) { return std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, T * kBlock)); }

template <typename T>
void forward_impl(const Wkv4Params& p) {
  using Acc = typename Wkv4Acc<T>::type;
  const int64_t B = p.B, Tn = p.T, C = p.C;
  const int64_t blocks = channel_blocks(C);
  const Acc* td = static_cast<const Acc*>(p.time_decay);
  const Acc* tf = static_cast<const Acc*>(p.time_first);
  const Acc* state_in = static_cast<const Acc*>(p.state_in);
  Acc* state_out = static_cast<Acc*>(p.state_out);
  parallel_for(B * blocks, task_grain(Tn), [&](int64_t begin, int64_t end) {
    alignas(64) Acc w[kBlock], u[kBlock], aa[kBlock], bb[kBlock], pp[kBlock];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / blocks, c0 = (task % blocks) * kBlock;
      const int64_t n = std::min(kBlock, C - c0);
      for (int64_t i = 0; i < n; ++i) {
        w[i] = wkv4_decay<Acc>(td[c0 + i]);
        u[i] = tf[c0 + i];
        aa[i] = state_in ? state_in[(b * 3 + 0) * C + c0 + i] : Acc(0);
        bb[i] = state_in ? state_in[(b * 3 + 1) * C + c0 + i] : Acc(0);
        pp[i] = state_in ? state_in[(b * 3 + 2) * C + c0 + i] : wkv4_empty_pp<Acc>();
      }
      Block<T> blk{};
      const int64_t offset = b * Tn * C + c0;
      blk.k = static_cast<const T*>(p.k) + offset;
      blk.v = static_cast<const T*>(p.v) + offset;
      blk.y = static_cast<T*>(p.y) + offset;
      blk.T_steps = Tn;
      blk.C = C;
      blk.n = n;
      blk.w = w;
      blk.u = u;
      blk.aa = aa;
      blk.bb = bb;
      blk.pp = pp;
      forward_block_isa(blk);
      for (int64_t i = 0; i < n; ++i) {
        state_out[(b * 3 + 0) * C + c0 + i] = aa[i];
        state_out[(b * 3 + 1) * C + c0 + i] = bb[i];
        state_out[(b * 3 + 2) * C + c0 + i] = pp[i];
      }
    }
  });
}

// Workspace: partial sums gw, gu [B][C] (double), then the checkpoints of
// each task [B*blocks][chunks][3][kBlock] (Acc).
template <typename Acc>
size_t backward_workspace_bytes(const Wkv4Params& p) {
  const int64_t tasks = p.B * channel_blocks(p.C);
  return static_cast<size_t>(2 * p.B * p.C) * sizeof(double) +
         static_cast<size_t>(tasks * checkpoint_count(p.T) * 3 * kBlock) * sizeof(Acc);
}

template <typename T>
void backward_impl(const Wkv4Params& p) {
  using Acc = typename Wkv4Acc<T>::type;
  const int64_t B = p.B, Tn = p.T, C = p.C;
  const int64_t blocks = channel_blocks(C), chunks = checkpoint_count(Tn);
  const Acc* td = static_cast<const Acc*>(p.time_decay);
  const Acc* tf = static_cast<const Acc*>(p.time_first);
  const Acc* state_in = static_cast<const Acc*>(p.state_in);
  const Acc* gstate_in = static_cast<const Acc*>(p.gstate_in);
  Acc* gstate_out = static_cast<Acc*>(p.gstate_out);
  double* part_gw = static_cast<double*>(p.workspace);
  double* part_gu = part_gw + B * C;
  Acc* checkpoints = reinterpret_cast<Acc*>(part_gu + B * C);
  parallel_for(B * blocks, task_grain(Tn), [&](int64_t begin, int64_t end) {
    alignas(64) Acc w[kBlock], u[kBlock], aa[kBlock], bb[kBlock], pp[kBlock];
    alignas(64) Acc gaa[kBlock], gbb[kBlock], gq[kBlock];
    alignas(64) double gw[kBlock], gu[kBlock];
    std::vector<Acc> replay_buffer(static_cast<size_t>(std::min(kChunk, Tn) * 3 * kBlock));
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / blocks, c0 = (task % blocks) * kBlock;
      const int64_t n = std::min(kBlock, C - c0);
      for (int64_t i = 0; i < n; ++i) {
        w[i] = wkv4_decay<Acc>(td[c0 + i]);
        u[i] = tf[c0 + i];
        aa[i] = state_in ? state_in[(b * 3 + 0) * C + c0 + i] : Acc(0);
        bb[i] = state_in ? state_in[(b * 3 + 1) * C + c0 + i] : Acc(0);
        pp[i] = state_in ? state_in[(b * 3 + 2) * C + c0 + i] : wkv4_empty_pp<Acc>();
      }
      Block<T> blk{};
      const int64_t offset = b * Tn * C + c0;
      blk.k = static_cast<const T*>(p.k) + offset;
      blk.v = static_cast<const T*>(p.v) + offset;
      blk.gy = static_cast<const T*>(p.gy) + offset;
      blk.gk = static_cast<T*>(p.gk) + offset;
      blk.gv = static_cast<T*>(p.gv) + offset;
      blk.T_steps = Tn;
      blk.C = C;
      blk.n = n;
      blk.w = w;
      blk.u = u;
      blk.aa = aa;
      blk.bb = bb;
      blk.pp = pp;
      blk.checkpoints = checkpoints + task * chunks * 3 * kBlock;
      blk.replay = replay_buffer.data();
      blk.gaa = gaa;
      blk.gbb = gbb;
      blk.gq = gq;
      blk.gw = gw;
      blk.gu = gu;
      const Acc* gstate = gstate_in ? gstate_in + b * 3 * C + c0 : nullptr;
      backward_block_isa(blk, gstate != nullptr, gstate);
      for (int64_t i = 0; i < n; ++i) {
        part_gw[b * C + c0 + i] = gw[i];
        part_gu[b * C + c0 + i] = gu[i];
      }
      if (gstate_out) {
        for (int64_t i = 0; i < n; ++i) {
          // The adjoint of the initial state; its pp part through the sums it represents.
          Acc aa0 = state_in[(b * 3 + 0) * C + c0 + i];
          Acc bb0 = state_in[(b * 3 + 1) * C + c0 + i];
          gstate_out[(b * 3 + 0) * C + c0 + i] = gaa[i];
          gstate_out[(b * 3 + 1) * C + c0 + i] = gbb[i];
          gstate_out[(b * 3 + 2) * C + c0 + i] = wkv4_gpp_from_gq<Acc>(gaa[i], gbb[i], gq[i], aa0, bb0);
        }
      }
    }
  });
  // Sum over b in order: deterministic whatever the thread count.
  Acc* gtd = static_cast<Acc*>(p.gtime_decay);
  Acc* gtf = static_cast<Acc*>(p.gtime_first);
  parallel_for(C, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      double sum_gw = 0, sum_gu = 0;
      for (int64_t b = 0; b < B; ++b) {
        sum_gw += part_gw[b * C + c];
        sum_gu += part_gu[b * C + c];
      }
      double w = static_cast<double>(wkv4_decay<Acc>(td[c]));
      gtd[c] = static_cast<Acc>(wkv4_time_decay_grad<double>(w, sum_gw));
      gtf[c] = static_cast<Acc>(sum_gu);
    }
  });
}

template <typename Fn>
void dispatch_wkv4_dtype(DType dtype, const char* what, Fn&& fn) {
  switch (dtype) {
    case DType::Float32: fn(float{}); break;
    case DType::Float64: fn(double{}); break;
    case DType::BFloat16: fn(bf16{}); break;
    case DType::Float16: fn(f16{}); break;
    default: throw_type_error(what, ": unsupported dtype ", dtype_name(dtype));
  }
}

}  // namespace

size_t wkv4_backward_workspace_bytes_cpu(const Wkv4Params& params) {
  return params.dtype == DType::Float64 ? backward_workspace_bytes<double>(params)
                                        : backward_workspace_bytes<float>(params);
}

void wkv4_forward_cpu(const Wkv4Params& params) {
  dispatch_wkv4_dtype(params.dtype, "wkv4.forward", [&](auto tag) { forward_impl<decltype(tag)>(params); });
}

void wkv4_backward_cpu(const Wkv4Params& params) {
  dispatch_wkv4_dtype(params.dtype, "wkv4.backward", [&](auto tag) { backward_impl<decltype(tag)>(params); });
}

void wkv4_step_cpu(const Wkv4Params& params) {
  if (params.T != 1 || params.state_in == nullptr) throw_runtime_error("wkv4.step: internal error: T must be 1 with a state");
  dispatch_wkv4_dtype(params.dtype, "wkv4.step", [&](auto tag) { forward_impl<decltype(tag)>(params); });
}

}  // namespace lmk::kernels
