// RWKV-4 WKV on the CPU. Work is split over (b, block of channels); a
// task walks all T steps of its block, and the inner loop runs over the
// block's channels — contiguous in [B,T,C], independent, branch-free — so the
// compiler vectorises it (the exp is math/vector_exp.h's polynomial, not libm).
// The hot functions are compiled per instruction-set level and picked at
// load time (kernels/cpu_dispatch.h), never -march=native.
//
// Backward (see kernels/wkv4/wkv4.h): per task, a forward replay stores the
// state every kWkv4CheckpointCpu steps in the workspace; then chunks are
// processed last to first: replay the chunk into a kWkv4CheckpointCpu-step
// local buffer and run wkv4_step_backward over it in reverse. Partial sums of
// dL/dw and dL/du per (b, c) go to the workspace (in double) and are summed
// over b in a fixed order afterwards, so results do not depend on threading.

// no-trapping-math: without it, GCC threads jumps through the selects of the exp and the
// max, duplicates floating-point operations into the branches, and then may
// not if-convert them back (they "could trap"), leaving the loops scalar. We
// never read FP exception flags, so nothing observable changes. Applies to
// everything defined below, the inlined math/ functions included.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include <algorithm>
#include <vector>

#include "kernels/cpu_dispatch.h"
#include "kernels/wkv4/wkv4.h"
#include "math/compute_type.h"
#include "math/half.h"
#include "math/wkv4.h"
#include "runtime/error.h"
#include "runtime/thread_pool.h"

namespace lmk::kernels {
namespace {

constexpr int64_t kMaxBlock = 512;  // channels per task at most (see block_width)
constexpr int64_t kChunk = kWkv4CheckpointCpu;
constexpr int64_t kStateParts = 4;  // aa, bb, pp, pl (see math/wkv4.h)

// The running state of a block of channels and its per-channel constants.
// Local arrays: the compiler knows they alias nothing else.
template <typename Acc>
struct BlockState {
  alignas(64) Acc aa[kMaxBlock];
  alignas(64) Acc bb[kMaxBlock];
  alignas(64) Acc pp[kMaxBlock];
  alignas(64) Acc pl[kMaxBlock];
  alignas(64) Acc w_hi[kMaxBlock];
  alignas(64) Acc w_lo[kMaxBlock];
  alignas(64) Acc u[kMaxBlock];
};

// Rows are read with stride C, a short stretch of each page: the hardware
// prefetchers do not follow that well, so the loops ask for the row a few
// steps ahead themselves (measured: about 1.5x on the forward).
constexpr int64_t kPrefetchRows = 4;

template <typename T>
LMK_ALWAYS_INLINE void prefetch_row(const T* row, int64_t n) {
  for (int64_t i = 0; i < n; i += 64 / static_cast<int64_t>(sizeof(T))) __builtin_prefetch(row + i, 0);
}

template <typename T>
LMK_ALWAYS_INLINE void prefetch_row_for_write(T* row, int64_t n) {
  for (int64_t i = 0; i < n; i += 64 / static_cast<int64_t>(sizeof(T))) __builtin_prefetch(row + i, 1);
}

// The hot loops take every pointer as a __restrict parameter: GCC honours
// restrict on parameters (also once inlined), and without it the loops need
// more run-time alias checks than it is willing to emit, and stay scalar.

// `steps` steps of one block of n channels: k, v, y point at [b, t0, c0] with
// row stride C.
template <typename T, typename Acc>
LMK_ALWAYS_INLINE void forward_block(const T* __restrict k, const T* __restrict v, T* __restrict y, int64_t steps,
                                     int64_t C, int64_t n, Acc* __restrict aa, Acc* __restrict bb, Acc* __restrict pp,
                                     Acc* __restrict pl, const Acc* __restrict w_hi, const Acc* __restrict w_lo,
                                     const Acc* __restrict u) {
  for (int64_t t = 0; t < steps; ++t) {
    const T* kt = k + t * C;
    const T* vt = v + t * C;
    T* yt = y + t * C;
    if (t + kPrefetchRows < steps) {
      prefetch_row(kt + kPrefetchRows * C, n);
      prefetch_row(vt + kPrefetchRows * C, n);
      prefetch_row_for_write(yt + kPrefetchRows * C, n);
    }
    for (int64_t i = 0; i < n; ++i) {
      Acc kk = to_compute(kt[i]), vv = to_compute(vt[i]);
      Acc a = aa[i], b = bb[i], p = pp[i], l = pl[i];
      yt[i] = from_compute<T>(wkv4_output<Acc>(a, b, p, l, u[i], kk, vv));
      wkv4_update<Acc>(a, b, p, l, Wkv4Decay<Acc>{w_hi[i], w_lo[i]}, kk, vv);
      aa[i] = a;
      bb[i] = b;
      pp[i] = p;
      pl[i] = l;
    }
  }
}

// Advances the state by `steps` steps, first saving the state before every
// `every`-th step to saved[j / every][kStateParts][stride].
template <typename T, typename Acc>
LMK_ALWAYS_INLINE void replay_block(const T* __restrict k, const T* __restrict v, int64_t steps, int64_t every,
                                    int64_t C, int64_t n, int64_t stride, Acc* __restrict aa, Acc* __restrict bb,
                                    Acc* __restrict pp, Acc* __restrict pl, const Acc* __restrict w_hi,
                                    const Acc* __restrict w_lo, Acc* __restrict saved) {
  for (int64_t j = 0; j < steps; ++j) {
    if (j % every == 0) {
      Acc* s = saved + (j / every) * kStateParts * stride;
      for (int64_t i = 0; i < n; ++i) {
        s[i] = aa[i];
        s[stride + i] = bb[i];
        s[2 * stride + i] = pp[i];
        s[3 * stride + i] = pl[i];
      }
    }
    const T* kt = k + j * C;
    const T* vt = v + j * C;
    if (j + kPrefetchRows < steps) {
      prefetch_row(kt + kPrefetchRows * C, n);
      prefetch_row(vt + kPrefetchRows * C, n);
    }
    for (int64_t i = 0; i < n; ++i) {
      Acc a = aa[i], b = bb[i], p = pp[i], l = pl[i];
      wkv4_update<Acc>(a, b, p, l, Wkv4Decay<Acc>{w_hi[i], w_lo[i]}, to_compute(kt[i]), to_compute(vt[i]));
      aa[i] = a;
      bb[i] = b;
      pp[i] = p;
      pl[i] = l;
    }
  }
}

// The reverse pass over one chunk: saved[j] is the state before step j;
// (gaa, gbb, gq) is the adjoint of the state after the chunk on entry and
// before it on exit; this chunk's dL/dw, dL/du terms are added to gw, gu.
template <typename T, typename Acc>
LMK_ALWAYS_INLINE void reverse_block(const T* __restrict k, const T* __restrict v, const T* __restrict gy,
                                     T* __restrict gk, T* __restrict gv, int64_t steps, int64_t C, int64_t n,
                                     int64_t stride, const Acc* __restrict saved, const Acc* __restrict w_hi,
                                     const Acc* __restrict w_lo, const Acc* __restrict u, Acc* __restrict gaa,
                                     Acc* __restrict gbb, Acc* __restrict gq, Acc* __restrict gw_sum,
                                     Acc* __restrict gu_sum) {
  for (int64_t j = steps - 1; j >= 0; --j) {
    const Acc* s = saved + j * kStateParts * stride;
    const T* kt = k + j * C;
    const T* vt = v + j * C;
    const T* gyt = gy + j * C;
    T* gkt = gk + j * C;
    T* gvt = gv + j * C;
    if (j >= kPrefetchRows) {  // k, v are still cached from the replay of this chunk
      prefetch_row(gyt - kPrefetchRows * C, n);
      prefetch_row_for_write(gkt - kPrefetchRows * C, n);
      prefetch_row_for_write(gvt - kPrefetchRows * C, n);
    }
    for (int64_t i = 0; i < n; ++i) {
      Acc ga = gaa[i], gb = gbb[i], g_q = gq[i];
      Acc d_k, d_v, d_w, d_u;
      wkv4_step_backward<Acc>(s[i], s[stride + i], s[2 * stride + i], s[3 * stride + i],
                              Wkv4Decay<Acc>{w_hi[i], w_lo[i]}, u[i], to_compute(kt[i]), to_compute(vt[i]),
                              to_compute(gyt[i]), ga, gb, g_q, d_k, d_v, d_w, d_u);
      gaa[i] = ga;
      gbb[i] = gb;
      gq[i] = g_q;
      gkt[i] = from_compute<T>(d_k);
      gvt[i] = from_compute<T>(d_v);
      gw_sum[i] += d_w;
      gu_sum[i] += d_u;
    }
  }
}

// One task: its tensors, offsets applied (k etc. at [b, 0, c0], row stride C).
template <typename T>
struct Block {
  using Acc = compute_t<T>;
  int64_t offset;  // of [b, 0, c0] in k, v, y, gy, gk, gv
  const T* k;
  const T* v;
  T* y;
  const T* gy;
  T* gk;
  T* gv;
  int64_t steps;
  int64_t C;
  int64_t n;               // channels in this block (<= width)
  int64_t width;           // the block width: the stride of the saved states
  BlockState<Acc>* state;  // in: the initial state; out: the final one, carried (not yet folded)
  // backward only
  const Acc* gstate;  // gState input at [b, 0, c0], or nullptr
  Acc* checkpoints;   // [ceil(steps / kChunk)][kStateParts][width]
  Acc* replay;        // [kChunk][kStateParts][width]
  Acc* gaa;           // out: the adjoint of the initial state, [n] each
  Acc* gbb;
  Acc* gq;
  double* gw;  // out: per-channel sums over t, [n] each
  double* gu;
};

template <typename T>
LMK_ALWAYS_INLINE void forward_task(const Block<T>& blk) {
  auto& st = *blk.state;
  forward_block(blk.k, blk.v, blk.y, blk.steps, blk.C, blk.n, st.aa, st.bb, st.pp, st.pl, st.w_hi, st.w_lo, st.u);
}

template <typename T>
LMK_ALWAYS_INLINE void backward_task(const Block<T>& blk) {
  using Acc = compute_t<T>;
  auto& st = *blk.state;
  const int64_t n = blk.n, C = blk.C, steps = blk.steps;
  const int64_t chunks = (steps + kChunk - 1) / kChunk;
  replay_block(blk.k, blk.v, steps, kChunk, C, n, blk.width, st.aa, st.bb, st.pp, st.pl, st.w_hi, st.w_lo,
               blk.checkpoints);
  // Seed the adjoint from d(loss)/d(stored final state).
  for (int64_t i = 0; i < n; ++i) {
    const Acc* gs = blk.gstate;
    Acc ga = gs ? gs[i] : Acc(0), gb = gs ? gs[C + i] : Acc(0), gp = gs ? gs[2 * C + i] : Acc(0);
    Wkv4Folded<Acc> fold = wkv4_fold<Acc>(st.pp[i], st.pl[i]);
    wkv4_seed_adjoint<Acc>(ga, gb, gp, st.aa[i] * fold.scale, st.bb[i] * fold.scale, fold.scale, blk.gaa[i], blk.gbb[i],
                           blk.gq[i]);
    blk.gw[i] = 0;
    blk.gu[i] = 0;
  }
  alignas(64) Acc gw_chunk[kMaxBlock], gu_chunk[kMaxBlock];
  const int64_t stride = blk.width;
  for (int64_t chunk = chunks - 1; chunk >= 0; --chunk) {
    const int64_t t0 = chunk * kChunk;
    const int64_t len = std::min(kChunk, steps - t0);
    const Acc* ck = blk.checkpoints + chunk * kStateParts * stride;
    for (int64_t i = 0; i < n; ++i) {
      st.aa[i] = ck[i];
      st.bb[i] = ck[stride + i];
      st.pp[i] = ck[2 * stride + i];
      st.pl[i] = ck[3 * stride + i];
      gw_chunk[i] = 0;
      gu_chunk[i] = 0;
    }
    const int64_t offset = t0 * C;
    replay_block(blk.k + offset, blk.v + offset, len, 1, C, n, stride, st.aa, st.bb, st.pp, st.pl, st.w_hi, st.w_lo,
                 blk.replay);
    reverse_block(blk.k + offset, blk.v + offset, blk.gy + offset, blk.gk + offset, blk.gv + offset, len, C, n, stride,
                  blk.replay, st.w_hi, st.w_lo, st.u, blk.gaa, blk.gbb, blk.gq, gw_chunk, gu_chunk);
    // Chunk sums (<= kChunk terms in Acc) into double totals.
    for (int64_t i = 0; i < n; ++i) {
      blk.gw[i] += static_cast<double>(gw_chunk[i]);
      blk.gu[i] += static_cast<double>(gu_chunk[i]);
    }
  }
}

// The multi-versioned entry points, one per storage type (the templates
// above are inlined into each clone and compiled for its instruction set).
LMK_CPU_CLONES void forward_task_isa(const Block<float>& blk) { forward_task(blk); }
LMK_CPU_CLONES void forward_task_isa(const Block<bf16>& blk) { forward_task(blk); }
LMK_CPU_CLONES void forward_task_isa(const Block<f16>& blk) { forward_task(blk); }
void forward_task_isa(const Block<double>& blk) { forward_task(blk); }

LMK_CPU_CLONES void backward_task_isa(const Block<float>& blk) { backward_task(blk); }
LMK_CPU_CLONES void backward_task_isa(const Block<bf16>& blk) { backward_task(blk); }
LMK_CPU_CLONES void backward_task_isa(const Block<f16>& blk) { backward_task(blk); }
void backward_task_isa(const Block<double>& blk) { backward_task(blk); }

// Channels per task: as wide as possible (up to whole rows of at most 512
// channels, so each task streams long contiguous stretches of k, v, y and
// touches fewer pages) while still giving every thread a task; multiples of
// 16. Measured on the 2-core Zen 4 VM (quiet): B=8,T=1024,C=512 forward
// 2.95 ms with whole rows vs 3.49 ms with 64-channel blocks; B=1,T=16384,
// C=256 forward + backward 16.0 ms with two 128-channel blocks, 18.2 ms with
// four 64-channel ones, 24.5 ms with one whole-row task. A tuning choice
// only: results do not depend on it.
int64_t block_width(int64_t B, int64_t C) {
  if (C <= 0) return 16;
  const int64_t threads = thread_pool_size(), rows = std::max<int64_t>(B, 1);
  int64_t per_row = std::max((C + kMaxBlock - 1) / kMaxBlock, (threads + rows - 1) / rows);
  per_row = std::max<int64_t>(1, std::min(per_row, (C + 15) / 16));
  const int64_t width = ((C + per_row - 1) / per_row + 15) / 16 * 16;
  return std::min(width, kMaxBlock);
}

int64_t checkpoint_count(int64_t T) { return (T + kChunk - 1) / kChunk; }

// Tasks per parallel chunk: at least ~64k element-steps each, so short
// sequences (step, T = 1) do not pay for waking the pool.
int64_t task_grain(int64_t T, int64_t width) {
  return std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, T * width));
}

// Loads the per-channel constants and the initial state of block (b, c0).
template <typename Acc>
void load_block(const Wkv4Params& p, int64_t b, int64_t c0, int64_t n, BlockState<Acc>& st) {
  const Acc* td = static_cast<const Acc*>(p.time_decay);
  const Acc* tf = static_cast<const Acc*>(p.time_first);
  const Acc* s = static_cast<const Acc*>(p.state_in);
  const int64_t C = p.C;
  for (int64_t i = 0; i < n; ++i) {
    Wkv4Decay<Acc> w = wkv4_decay<Acc>(td[c0 + i]);
    st.w_hi[i] = w.hi;
    st.w_lo[i] = w.lo;
    st.u[i] = tf[c0 + i];
    st.aa[i] = s ? s[(b * 3 + 0) * C + c0 + i] : Acc(0);
    st.bb[i] = s ? s[(b * 3 + 1) * C + c0 + i] : Acc(0);
    st.pp[i] = s ? s[(b * 3 + 2) * C + c0 + i] : wkv4_empty_pp<Acc>();
    st.pl[i] = Acc(0);
  }
}

// Task (b, channels [c0, c0 + n)) with its state loaded into *st: k, v and
// the sizes set; the caller adds the tensors its pass writes.
template <typename T>
Block<T> task_block(const Wkv4Params& p, int64_t b, int64_t c0, int64_t n, int64_t width,
                    BlockState<compute_t<T>>* st) {
  load_block(p, b, c0, n, *st);
  Block<T> blk{};
  blk.offset = b * p.T * p.C + c0;
  blk.k = static_cast<const T*>(p.k) + blk.offset;
  blk.v = static_cast<const T*>(p.v) + blk.offset;
  blk.steps = p.T;
  blk.C = p.C;
  blk.n = n;
  blk.width = width;
  blk.state = st;
  return blk;
}

template <typename T>
void forward_impl(const Wkv4Params& p) {
  using Acc = compute_t<T>;
  const int64_t B = p.B, Tn = p.T, C = p.C;
  const int64_t width = block_width(B, C), blocks = (C + width - 1) / width;
  Acc* state_out = static_cast<Acc*>(p.state_out);
  parallel_for(B * blocks, task_grain(Tn, width), [&](int64_t begin, int64_t end) {
    BlockState<Acc> st;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / blocks, c0 = (task % blocks) * width;
      const int64_t n = std::min(width, C - c0);
      Block<T> blk = task_block<T>(p, b, c0, n, width, &st);
      blk.y = static_cast<T*>(p.y) + blk.offset;
      forward_task_isa(blk);
      for (int64_t i = 0; i < n; ++i) {
        Wkv4Folded<Acc> fold = wkv4_fold<Acc>(st.pp[i], st.pl[i]);
        state_out[(b * 3 + 0) * C + c0 + i] = st.aa[i] * fold.scale;
        state_out[(b * 3 + 1) * C + c0 + i] = st.bb[i] * fold.scale;
        state_out[(b * 3 + 2) * C + c0 + i] = fold.pp;
      }
    }
  });
}

// Workspace: partial sums gw, gu [B][C] (double), then the checkpoints of
// each task [B*blocks][chunks][kStateParts][width] (Acc). The width is
// chosen the same way here and in backward_impl.
template <typename Acc>
size_t backward_workspace_bytes(const Wkv4Params& p) {
  const int64_t width = block_width(p.B, p.C), tasks = p.B * ((p.C + width - 1) / width);
  return static_cast<size_t>(2 * p.B * p.C) * sizeof(double) +
         static_cast<size_t>(tasks * checkpoint_count(p.T) * kStateParts * width) * sizeof(Acc);
}

template <typename T>
void backward_impl(const Wkv4Params& p) {
  using Acc = compute_t<T>;
  const int64_t B = p.B, Tn = p.T, C = p.C;
  const int64_t width = block_width(B, C), blocks = (C + width - 1) / width, chunks = checkpoint_count(Tn);
  const Acc* state_in = static_cast<const Acc*>(p.state_in);
  const Acc* gstate_in = static_cast<const Acc*>(p.gstate_in);
  Acc* gstate_out = static_cast<Acc*>(p.gstate_out);
  double* part_gw = static_cast<double*>(p.workspace);
  double* part_gu = part_gw + B * C;
  Acc* checkpoints = reinterpret_cast<Acc*>(part_gu + B * C);
  parallel_for(B * blocks, task_grain(Tn, width), [&](int64_t begin, int64_t end) {
    BlockState<Acc> st;
    alignas(64) Acc gaa[kMaxBlock], gbb[kMaxBlock], gq[kMaxBlock];
    alignas(64) double gw[kMaxBlock], gu[kMaxBlock];
    std::vector<Acc> replay_buffer(static_cast<size_t>(std::min(kChunk, Tn) * kStateParts * width));
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / blocks, c0 = (task % blocks) * width;
      const int64_t n = std::min(width, C - c0);
      Block<T> blk = task_block<T>(p, b, c0, n, width, &st);
      blk.gy = static_cast<const T*>(p.gy) + blk.offset;
      blk.gk = static_cast<T*>(p.gk) + blk.offset;
      blk.gv = static_cast<T*>(p.gv) + blk.offset;
      blk.gstate = gstate_in ? gstate_in + b * 3 * C + c0 : nullptr;
      blk.checkpoints = checkpoints + task * chunks * kStateParts * width;
      blk.replay = replay_buffer.data();
      blk.gaa = gaa;
      blk.gbb = gbb;
      blk.gq = gq;
      blk.gw = gw;
      blk.gu = gu;
      backward_task_isa(blk);
      for (int64_t i = 0; i < n; ++i) {
        part_gw[b * C + c0 + i] = gw[i];
        part_gu[b * C + c0 + i] = gu[i];
      }
      if (gstate_out) {
        for (int64_t i = 0; i < n; ++i) {
          // The adjoint of the initial state; its pp part through the sums it
          // represents. With no steps the state passes through: hand gState's
          // pp part on exactly rather than through gq's rounding.
          const int64_t at = b * 3 * C + c0 + i;
          gstate_out[at] = gaa[i];
          gstate_out[at + C] = gbb[i];
          gstate_out[at + 2 * C] = Tn == 0
                                       ? (gstate_in ? gstate_in[at + 2 * C] : Acc(0))
                                       : wkv4_gpp_from_gq<Acc>(gaa[i], gbb[i], gq[i], state_in[at], state_in[at + C]);
        }
      }
    }
  });
  // Sum over b in order: deterministic whatever the thread count.
  const Acc* td = static_cast<const Acc*>(p.time_decay);
  Acc* gtd = static_cast<Acc*>(p.gtime_decay);
  Acc* gtf = static_cast<Acc*>(p.gtime_first);
  parallel_for(C, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      double sum_gw = 0, sum_gu = 0;
      for (int64_t b = 0; b < B; ++b) {
        sum_gw += part_gw[b * C + c];
        sum_gu += part_gu[b * C + c];
      }
      gtd[c] = static_cast<Acc>(wkv4_time_decay_grad<double>(wkv4_decay<Acc>(td[c]).value(), sum_gw));
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
  if (params.T != 1 || params.state_in == nullptr)
    throw_runtime_error("wkv4.step: internal error: T must be 1 with a state");
  dispatch_wkv4_dtype(params.dtype, "wkv4.step", [&](auto tag) { forward_impl<decltype(tag)>(params); });
}

}  // namespace lmk::kernels
