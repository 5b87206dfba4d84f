// The tiled CUDA kernels of TransformerFAM attention (FlashAttention-2's
// scheme on CUDA cores, float32 arithmetic for every storage type). Included
// by one small .cu file per head-dim instantiation (fam_cuda_d64.cu,
// fam_cuda_d128.cu, fam_cuda_generic.cu) so a change recompiles little and
// the files build in parallel.
//
// Every kernel runs 256 threads as a 16 × 16 grid (ty, tx). A thread owns the
// tile rows ty, ty+16, ... and the tile columns tx, tx+16, ...; the 16 threads
// of a row sit in one half-warp, so row maxima and sums are shuffles.
// Tiles live in shared memory as float32 with row stride D+1 (no bank
// conflicts when 16 threads read 16 different rows at one d); score tiles,
// softmax state and output accumulators live in registers.
//
//   forward:  block = (query tile, b·h). For each key tile the tile's rows may
//             see (FAM keys famK[b, kvh, τ] read in place, then the sequence
//             window, skipping tiles no row sees): S = Q Kᵀ, mask only where the
//             tile straddles the causal edge, online softmax, O += P V with P
//             passed through shared memory. Writes out and lse.
//   dq:       block = (query tile, b·h): Δ = rowsum(gOut∘out) (written for the
//             dkv pass), then per key tile S, dP = gOut Vᵀ, dS = P∘(dP − Δ),
//             dQ += dS K in registers. Each block owns its rows: no atomics.
//   dkv:      block = (key tile, b·kvh), key tiles being the sequence tiles and
//             then every block's FAM tiles. dK, dV stay in registers while the
//             block walks every query head of the group and every query tile
//             that sees the keys, in a fixed order: deterministic, no atomics.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda_grid.h"
#include "kernels/cuda_launch.cuh"
#include "kernels/fam/fam.h"
#include "math/attention_math.h"
#include "math/compute_type.h"
#include "math/fam_mask.h"
#include "math/half.h"
#include "runtime/cuda_check.h"

namespace lmk::kernels::fam_cuda {

constexpr int kThreads = 256;
constexpr int kSide = 16;  // the thread grid is kSide × kSide

// Max / sum over the 16 threads of a tile row (lanes differing in bits 0..3).
__device__ __forceinline__ float row_reduce_max(float x) {
  for (int offset = kSide / 2; offset > 0; offset /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, offset));
  return x;
}
__device__ __forceinline__ float row_reduce_sum(float x) {
  for (int offset = kSide / 2; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;
}

// Copies rows [0, n) of a [*, D] tensor region (scaled) into a shared tile of
// `rows` rows with stride ld; rows n.. are zero.
__device__ __forceinline__ void load_tile(float* tile, int rows, int ld, const void* src, int64_t offset, int n, int D,
                                          float scale, DType dtype) {
  for (int idx = threadIdx.x; idx < rows * D; idx += kThreads) {
    int r = idx / D, d = idx - r * D;
    tile[r * ld + d] = r < n ? scale * load_compute(src, offset + static_cast<int64_t>(r) * D + d, dtype) : 0.0f;
  }
}

// The key tiles a query tile [q0, q1) of block `block` reads, in order: FAM
// tiles, then sequence tiles of the window. Tile `it` → where and how masked.
struct KeyTileWalk {
  int64_t fam_tiles, seq_tiles, window_begin, window_end;
  __device__ __forceinline__ KeyTileWalk(const FamParams& p, const FamLayout& L, int64_t block, int64_t q1, int BK) {
    fam_tiles = (L.F + BK - 1) / BK;
    window_begin = fam_window_begin(p.mask, block);
    window_end = fam_window_end(p.mask, q1 - 1);
    if (window_end > L.Tk) window_end = L.Tk;
    seq_tiles = window_end > window_begin ? (window_end - window_begin + BK - 1) / BK : 0;
  }
  __device__ __forceinline__ int64_t count() const { return fam_tiles + seq_tiles; }
};

// ---- forward ----------------------------------------------------------------------

template <int kMaxD, bool kFixedD, int BQ, int BK>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const FamParams p, int64_t tiles_per_block, int64_t query_tiles) {
  constexpr int RQ = BQ / kSide, RK = BK / kSide, RD = kMaxD / kSide;
  const FamLayout L(p);
  const int D = kFixedD ? kMaxD : static_cast<int>(L.D);
  const int ld = D + 1;
  LMK_DYNAMIC_SHARED(float, smem);
  float* sQ = smem;          // BQ × ld, scaled q
  float* sK = sQ + BQ * ld;  // BK × ld; then P (BQ × (BK+1))
  const int k_region = BK * ld > BQ * (BK + 1) ? BK * ld : BQ * (BK + 1);
  float* sP = sK;
  float* sV = sK + k_region;  // BK × ld
  const int ty = threadIdx.x / kSide, tx = threadIdx.x % kSide;
  const float scale = static_cast<float>(p.scale);
  const int64_t q_tile = blockIdx.x;
  if (q_tile >= query_tiles) return;
  int64_t q0, q1;
  fam_query_tile(p.mask, L.Tq, BQ, tiles_per_block, q_tile, &q0, &q1);
  if (q0 >= q1) return;  // uniform over the block
  const int nq = static_cast<int>(q1 - q0);
  const int64_t block = fam_block_of(p.mask, q0);

  for (int64_t bh = blockIdx.y; bh < L.B * L.H; bh += gridDim.y) {
    const int64_t b = bh / L.H, h = bh % L.H, kvh = h / L.group;
    __syncthreads();  // the previous (b, h)'s last reads of sQ are done
    load_tile(sQ, BQ, ld, p.q, L.q_offset(b, h, q0), nq, D, scale, p.dtype);
    float o[RQ][RD], row_max[RQ], row_sum[RQ];
#pragma unroll
    for (int i = 0; i < RQ; ++i) {
      row_max[i] = attention_neg_inf<float>();
      row_sum[i] = 0.0f;
#pragma unroll
      for (int u = 0; u < RD; ++u) o[i][u] = 0.0f;
    }
    const KeyTileWalk walk(p, L, block, q1, BK);
    for (int64_t it = 0; it < walk.count(); ++it) {
      const void *kp, *vp;
      int64_t off, j0 = 0;
      int n, kind = kFamTileFull;
      if (it < walk.fam_tiles) {
        int64_t f0 = it * BK;
        n = static_cast<int>(L.F - f0 < BK ? L.F - f0 : BK);
        kp = p.fam_k;
        vp = p.fam_v;
        off = L.fam_offset(b, kvh, block, f0);
      } else {
        j0 = walk.window_begin + (it - walk.fam_tiles) * BK;
        n = static_cast<int>(walk.window_end - j0 < BK ? walk.window_end - j0 : BK);
        kind = fam_tile_kind(p.mask, q0, q1, j0, j0 + n);
        if (kind == kFamTileSkip) continue;  // uniform over the block
        kp = p.k;
        vp = p.v;
        off = L.k_offset(b, kvh, j0);
      }
      __syncthreads();  // previous tile's sP / sV reads are done
      load_tile(sK, BK, ld, kp, off, n, D, 1.0f, p.dtype);
      load_tile(sV, BK, ld, vp, off, n, D, 1.0f, p.dtype);
      __syncthreads();

      float s[RQ][RK];
#pragma unroll
      for (int i = 0; i < RQ; ++i)
#pragma unroll
        for (int j = 0; j < RK; ++j) s[i][j] = 0.0f;
#pragma unroll 4
      for (int d = 0; d < D; ++d) {
        float a[RQ], kk[RK];
#pragma unroll
        for (int i = 0; i < RQ; ++i) a[i] = sQ[(ty + kSide * i) * ld + d];
#pragma unroll
        for (int j = 0; j < RK; ++j) kk[j] = sK[(tx + kSide * j) * ld + d];
#pragma unroll
        for (int i = 0; i < RQ; ++i)
#pragma unroll
          for (int j = 0; j < RK; ++j) s[i][j] += a[i] * kk[j];
      }
      __syncthreads();  // all reads of sK done: P overwrites it

#pragma unroll
      for (int i = 0; i < RQ; ++i) {
        const int r = ty + kSide * i;
        const int64_t t = q0 + r;
        float mx = attention_neg_inf<float>();
#pragma unroll
        for (int j = 0; j < RK; ++j) {
          const int c = tx + kSide * j;
          bool visible = r < nq && c < n && (kind == kFamTileFull || fam_key_visible(p.mask, t, j0 + c));
          if (!visible) s[i][j] = attention_neg_inf<float>();
          mx = fmaxf(mx, s[i][j]);
        }
        mx = row_reduce_max(mx);
        const float factor = online_softmax_grow<float>(&row_max[i], mx);
        const float offset = online_softmax_offset<float>(row_max[i]);
        float sum = 0.0f;
#pragma unroll
        for (int j = 0; j < RK; ++j) {
          s[i][j] = softmax_weight<float>(s[i][j], offset);
          sum += s[i][j];
          sP[r * (BK + 1) + tx + kSide * j] = s[i][j];
        }
        row_sum[i] = row_sum[i] * factor + row_reduce_sum(sum);
#pragma unroll
        for (int u = 0; u < RD; ++u) o[i][u] *= factor;
      }
      __syncthreads();

      for (int c = 0; c < n; ++c) {
        float w[RQ];
#pragma unroll
        for (int i = 0; i < RQ; ++i) w[i] = sP[(ty + kSide * i) * (BK + 1) + c];
#pragma unroll
        for (int u = 0; u < RD; ++u) {
          const int d = tx + kSide * u;
          if (kFixedD || d < D) {
            const float vv = sV[c * ld + d];
#pragma unroll
            for (int i = 0; i < RQ; ++i) o[i][u] += w[i] * vv;
          }
        }
      }
    }

#pragma unroll
    for (int i = 0; i < RQ; ++i) {
      const int r = ty + kSide * i;
      if (r < nq) {
        const float inv = 1.0f / row_sum[i];
        const int64_t off = L.q_offset(b, h, q0 + r);
#pragma unroll
        for (int u = 0; u < RD; ++u) {
          const int d = tx + kSide * u;
          if (kFixedD || d < D) store_compute(p.out, off + d, o[i][u] * inv, p.dtype);
        }
        if (tx == 0) {
          static_cast<float*>(p.lse)[L.stat_offset(b, h, q0 + r)] = online_softmax_lse<float>(row_max[i], row_sum[i]);
        }
      }
    }
  }
}

// ---- backward, pass 1: Δ and dq ----------------------------------------------------

// Blocks per SM stated rather than left to ptxas, whose choice flipped with
// unrelated code changes: up to D = 128 one block (about 180 registers, no
// spills), D = 256 two blocks (128 registers, a few spills), as before.
template <int kMaxD, bool kFixedD, int BQ, int BK>
__global__ void __launch_bounds__(kThreads, kMaxD > 128 ? 2 : 1)
    dq_kernel(const FamParams p, int64_t tiles_per_block, int64_t query_tiles) {
  constexpr int RQ = BQ / kSide, RK = BK / kSide, RD = kMaxD / kSide;
  const FamLayout L(p);
  const int D = kFixedD ? kMaxD : static_cast<int>(L.D);
  const int ld = D + 1;
  LMK_DYNAMIC_SHARED(float, smem);
  float* sQ = smem;          // BQ × ld, scaled q
  float* sG = sQ + BQ * ld;  // BQ × ld, gOut
  float* sK = sG + BQ * ld;  // BK × ld
  float* sV = sK + BK * ld;  // BK × ld; then dS (BQ × (BK+1))
  float* sS = sV;
  const int ty = threadIdx.x / kSide, tx = threadIdx.x % kSide;
  const float scale = static_cast<float>(p.scale);
  const int64_t q_tile = blockIdx.x;
  if (q_tile >= query_tiles) return;
  int64_t q0, q1;
  fam_query_tile(p.mask, L.Tq, BQ, tiles_per_block, q_tile, &q0, &q1);
  if (q0 >= q1) return;
  const int nq = static_cast<int>(q1 - q0);
  const int64_t block = fam_block_of(p.mask, q0);
  float* delta_out = static_cast<float*>(p.delta);
  const float* lse = static_cast<const float*>(p.lse);

  for (int64_t bh = blockIdx.y; bh < L.B * L.H; bh += gridDim.y) {
    const int64_t b = bh / L.H, h = bh % L.H, kvh = h / L.group;
    __syncthreads();
    load_tile(sQ, BQ, ld, p.q, L.q_offset(b, h, q0), nq, D, scale, p.dtype);
    load_tile(sG, BQ, ld, p.grad_out, L.q_offset(b, h, q0), nq, D, 1.0f, p.dtype);
    __syncthreads();
    float row_lse[RQ], row_delta[RQ], dq[RQ][RD];
#pragma unroll
    for (int i = 0; i < RQ; ++i) {
      const int r = ty + kSide * i;
      float part = 0.0f;
      if (r < nq) {
        const int64_t off = L.q_offset(b, h, q0 + r);
        for (int d = tx; d < D; d += kSide) part += sG[r * ld + d] * load_compute(p.out, off + d, p.dtype);
      }
      row_delta[i] = row_reduce_sum(part);
      row_lse[i] = r < nq ? lse[L.stat_offset(b, h, q0 + r)] : 0.0f;
      if (r < nq && tx == 0) delta_out[L.stat_offset(b, h, q0 + r)] = row_delta[i];
#pragma unroll
      for (int u = 0; u < RD; ++u) dq[i][u] = 0.0f;
    }

    const KeyTileWalk walk(p, L, block, q1, BK);
    for (int64_t it = 0; it < walk.count(); ++it) {
      const void *kp, *vp;
      int64_t off, j0 = 0;
      int n, kind = kFamTileFull;
      if (it < walk.fam_tiles) {
        int64_t f0 = it * BK;
        n = static_cast<int>(L.F - f0 < BK ? L.F - f0 : BK);
        kp = p.fam_k;
        vp = p.fam_v;
        off = L.fam_offset(b, kvh, block, f0);
      } else {
        j0 = walk.window_begin + (it - walk.fam_tiles) * BK;
        n = static_cast<int>(walk.window_end - j0 < BK ? walk.window_end - j0 : BK);
        kind = fam_tile_kind(p.mask, q0, q1, j0, j0 + n);
        if (kind == kFamTileSkip) continue;
        kp = p.k;
        vp = p.v;
        off = L.k_offset(b, kvh, j0);
      }
      __syncthreads();  // previous tile's sS / sK reads are done
      load_tile(sK, BK, ld, kp, off, n, D, 1.0f, p.dtype);
      load_tile(sV, BK, ld, vp, off, n, D, 1.0f, p.dtype);
      __syncthreads();

      float s[RQ][RK], dp[RQ][RK];
#pragma unroll
      for (int i = 0; i < RQ; ++i)
#pragma unroll
        for (int j = 0; j < RK; ++j) s[i][j] = dp[i][j] = 0.0f;
#pragma unroll 2
      for (int d = 0; d < D; ++d) {
        float a[RQ], g[RQ], kk[RK], vv[RK];
#pragma unroll
        for (int i = 0; i < RQ; ++i) {
          a[i] = sQ[(ty + kSide * i) * ld + d];
          g[i] = sG[(ty + kSide * i) * ld + d];
        }
#pragma unroll
        for (int j = 0; j < RK; ++j) {
          kk[j] = sK[(tx + kSide * j) * ld + d];
          vv[j] = sV[(tx + kSide * j) * ld + d];
        }
#pragma unroll
        for (int i = 0; i < RQ; ++i)
#pragma unroll
          for (int j = 0; j < RK; ++j) {
            s[i][j] += a[i] * kk[j];
            dp[i][j] += g[i] * vv[j];
          }
      }
      __syncthreads();  // all reads of sV done: dS overwrites it

#pragma unroll
      for (int i = 0; i < RQ; ++i) {
        const int r = ty + kSide * i;
#pragma unroll
        for (int j = 0; j < RK; ++j) {
          const int c = tx + kSide * j;
          bool visible = r < nq && c < n && (kind == kFamTileFull || fam_key_visible(p.mask, q0 + r, j0 + c));
          float pw = visible ? softmax_weight<float>(s[i][j], row_lse[i]) : 0.0f;
          sS[r * (BK + 1) + c] = visible ? softmax_score_grad<float>(pw, dp[i][j], row_delta[i]) : 0.0f;
        }
      }
      __syncthreads();

      for (int c = 0; c < n; ++c) {
        float w[RQ];
#pragma unroll
        for (int i = 0; i < RQ; ++i) w[i] = sS[(ty + kSide * i) * (BK + 1) + c];
#pragma unroll
        for (int u = 0; u < RD; ++u) {
          const int d = tx + kSide * u;
          if (kFixedD || d < D) {
            const float kv = sK[c * ld + d];
#pragma unroll
            for (int i = 0; i < RQ; ++i) dq[i][u] += w[i] * kv;
          }
        }
      }
    }

#pragma unroll
    for (int i = 0; i < RQ; ++i) {
      const int r = ty + kSide * i;
      if (r < nq) {
        const int64_t off = L.q_offset(b, h, q0 + r);
#pragma unroll
        for (int u = 0; u < RD; ++u) {
          const int d = tx + kSide * u;
          if (kFixedD || d < D) store_compute(p.grad_q, off + d, scale * dq[i][u], p.dtype);
        }
      }
    }
  }
}

// ---- backward, pass 2: dk and dv per key tile -----------------------------------------

template <int kMaxD, bool kFixedD, int BK, int BQ>
__global__ void __launch_bounds__(kThreads)
    dkv_kernel(const FamParams p, int64_t seq_key_tiles, int64_t fam_key_tiles) {
  constexpr int RK = BK / kSide, RQ = BQ / kSide, RD = kMaxD / kSide;
  const FamLayout L(p);
  const int D = kFixedD ? kMaxD : static_cast<int>(L.D);
  const int ld = D + 1;
  LMK_DYNAMIC_SHARED(float, smem);
  float* sK = smem;                // BK × ld
  float* sV = sK + BK * ld;        // BK × ld
  float* sQ = sV + BK * ld;        // BQ × ld, scaled q
  float* sG = sQ + BQ * ld;        // BQ × ld, gOut
  float* sP = sG + BQ * ld;        // BK × (BQ+1)
  float* sS = sP + BK * (BQ + 1);  // BK × (BQ+1): dS
  float* sLse = sS + BK * (BQ + 1);
  float* sDelta = sLse + BQ;
  const int ty = threadIdx.x / kSide, tx = threadIdx.x % kSide;
  const float scale = static_cast<float>(p.scale);
  const float* lse = static_cast<const float*>(p.lse);
  const float* delta = static_cast<const float*>(p.delta);

  const int64_t tile = blockIdx.x;
  const bool is_fam = tile >= seq_key_tiles;
  int64_t k0, fam_block = 0;
  int n;
  if (!is_fam) {
    k0 = tile * BK;
    n = static_cast<int>(L.Tk - k0 < BK ? L.Tk - k0 : BK);
  } else {
    const int64_t f = tile - seq_key_tiles;
    fam_block = f / fam_key_tiles;
    k0 = (f % fam_key_tiles) * BK;
    n = static_cast<int>(L.F - k0 < BK ? L.F - k0 : BK);
  }
  int64_t qb, qe;
  if (is_fam) {
    qb = fam_block * p.mask.block_size;
    qe = qb + p.mask.block_size < L.Tq ? qb + p.mask.block_size : L.Tq;
  } else {
    fam_queries_seeing(p.mask, L.Tq, k0, k0 + n, &qb, &qe);
  }

  for (int64_t bk = blockIdx.y; bk < L.B * L.Hkv; bk += gridDim.y) {
    const int64_t b = bk / L.Hkv, kvh = bk % L.Hkv;
    const int64_t koff = is_fam ? L.fam_offset(b, kvh, fam_block, k0) : L.k_offset(b, kvh, k0);
    const void* kp = is_fam ? p.fam_k : p.k;
    const void* vp = is_fam ? p.fam_v : p.v;
    __syncthreads();
    load_tile(sK, BK, ld, kp, koff, n, D, 1.0f, p.dtype);
    load_tile(sV, BK, ld, vp, koff, n, D, 1.0f, p.dtype);
    float dk[RK][RD], dv[RK][RD];
#pragma unroll
    for (int i = 0; i < RK; ++i)
#pragma unroll
      for (int u = 0; u < RD; ++u) dk[i][u] = dv[i][u] = 0.0f;

    for (int64_t gi = 0; gi < L.group; ++gi) {
      const int64_t h = kvh * L.group + gi;
      int64_t q0 = qb;
      while (q0 < qe) {
        int64_t block_end = (fam_block_of(p.mask, q0) + 1) * p.mask.block_size;
        int64_t q1 = q0 + BQ;
        if (block_end < q1) q1 = block_end;
        if (qe < q1) q1 = qe;
        const int nq = static_cast<int>(q1 - q0);
        const int kind = is_fam ? kFamTileFull : fam_tile_kind(p.mask, q0, q1, k0, k0 + n);
        if (kind != kFamTileSkip) {
          __syncthreads();  // previous query tile's sQ / sG / sP / sS reads are done
          load_tile(sQ, BQ, ld, p.q, L.q_offset(b, h, q0), nq, D, scale, p.dtype);
          load_tile(sG, BQ, ld, p.grad_out, L.q_offset(b, h, q0), nq, D, 1.0f, p.dtype);
          for (int r = threadIdx.x; r < BQ; r += kThreads) {
            sLse[r] = r < nq ? lse[L.stat_offset(b, h, q0 + r)] : 0.0f;
            sDelta[r] = r < nq ? delta[L.stat_offset(b, h, q0 + r)] : 0.0f;
          }
          __syncthreads();

          float st[RK][RQ], dpt[RK][RQ];
#pragma unroll
          for (int i = 0; i < RK; ++i)
#pragma unroll
            for (int j = 0; j < RQ; ++j) st[i][j] = dpt[i][j] = 0.0f;
#pragma unroll 2
          for (int d = 0; d < D; ++d) {
            float kk[RK], vv[RK], a[RQ], g[RQ];
#pragma unroll
            for (int i = 0; i < RK; ++i) {
              kk[i] = sK[(ty + kSide * i) * ld + d];
              vv[i] = sV[(ty + kSide * i) * ld + d];
            }
#pragma unroll
            for (int j = 0; j < RQ; ++j) {
              a[j] = sQ[(tx + kSide * j) * ld + d];
              g[j] = sG[(tx + kSide * j) * ld + d];
            }
#pragma unroll
            for (int i = 0; i < RK; ++i)
#pragma unroll
              for (int j = 0; j < RQ; ++j) {
                st[i][j] += kk[i] * a[j];
                dpt[i][j] += vv[i] * g[j];
              }
          }
#pragma unroll
          for (int i = 0; i < RK; ++i) {
            const int c = ty + kSide * i;  // key in the tile
#pragma unroll
            for (int j = 0; j < RQ; ++j) {
              const int r = tx + kSide * j;  // query in the tile
              bool visible = c < n && r < nq && (kind == kFamTileFull || fam_key_visible(p.mask, q0 + r, k0 + c));
              float pw = visible ? softmax_weight<float>(st[i][j], sLse[r]) : 0.0f;
              sP[c * (BQ + 1) + r] = pw;
              sS[c * (BQ + 1) + r] = visible ? softmax_score_grad<float>(pw, dpt[i][j], sDelta[r]) : 0.0f;
            }
          }
          __syncthreads();

          for (int r = 0; r < nq; ++r) {
            float pw[RK], ds[RK];
#pragma unroll
            for (int i = 0; i < RK; ++i) {
              pw[i] = sP[(ty + kSide * i) * (BQ + 1) + r];
              ds[i] = sS[(ty + kSide * i) * (BQ + 1) + r];
            }
#pragma unroll
            for (int u = 0; u < RD; ++u) {
              const int d = tx + kSide * u;
              if (kFixedD || d < D) {
                const float gv = sG[r * ld + d], qv = sQ[r * ld + d];
#pragma unroll
                for (int i = 0; i < RK; ++i) {
                  dv[i][u] += pw[i] * gv;
                  dk[i][u] += ds[i] * qv;
                }
              }
            }
          }
        }
        q0 = q1;
      }
    }

    void* gk = is_fam ? p.grad_fam_k : p.grad_k;
    void* gv = is_fam ? p.grad_fam_v : p.grad_v;
#pragma unroll
    for (int i = 0; i < RK; ++i) {
      const int c = ty + kSide * i;
      if (c < n) {
#pragma unroll
        for (int u = 0; u < RD; ++u) {
          const int d = tx + kSide * u;
          if (kFixedD || d < D) {
            store_compute(gk, koff + static_cast<int64_t>(c) * D + d, dk[i][u], p.dtype);
            store_compute(gv, koff + static_cast<int64_t>(c) * D + d, dv[i][u], p.dtype);
          }
        }
      }
    }
  }
}

// ---- launchers ------------------------------------------------------------------------

// Tile shapes of one instantiation: forward (FQ queries × FK keys), dq (QQ × QK),
// dkv (KK keys × KQ queries).
template <int kMaxD, bool kFixedD, int FQ, int FK, int QQ, int QK, int KK, int KQ>
struct TiledFam {
  static size_t forward_smem(int D) {
    size_t ld = D + 1;
    size_t k_region = FK * ld > size_t(FQ) * (FK + 1) ? FK * ld : size_t(FQ) * (FK + 1);
    return (FQ * ld + k_region + FK * ld) * sizeof(float);
  }
  static size_t dq_smem(int D) {
    size_t ld = D + 1;
    size_t v_region = QK * ld > size_t(QQ) * (QK + 1) ? QK * ld : size_t(QQ) * (QK + 1);
    return (2 * QQ * ld + QK * ld + v_region) * sizeof(float);
  }
  static size_t dkv_smem(int D) {
    size_t ld = D + 1;
    return (2 * KK * ld + 2 * KQ * ld + 2 * KK * (KQ + 1) + 2 * KQ) * sizeof(float);
  }
  template <typename Kernel>
  static void prepare(Kernel kernel, size_t smem) {
    if (smem > 48 * 1024) {
      cuda_check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
                 "fam: shared memory");
    }
  }

  // Blocks along y walk the (batch, head) rows.
  static unsigned rows_grid(int64_t rows) { return looping_grid(rows, 65535); }

  static void forward(const FamParams& p, cudaStream_t stream) {
    const int D = static_cast<int>(p.head_dim);
    int64_t tiles_per_block = fam_tiles_per_block(p.mask, p.query_len, FQ);
    int64_t blocks = (p.query_len + p.mask.block_size - 1) / p.mask.block_size;
    int64_t tiles = blocks * tiles_per_block;
    if (tiles == 0 || p.batch * p.heads == 0) return;
    auto kernel = forward_kernel<kMaxD, kFixedD, FQ, FK>;
    size_t smem = forward_smem(D);
    prepare(kernel, smem);
    dim3 grid(static_cast<unsigned>(tiles), rows_grid(p.batch * p.heads));
    launch(kernel, grid, kThreads, smem, stream, p, tiles_per_block, tiles);
    cuda_check_launch("fam: forward kernel");
  }

  static void backward(const FamParams& p, cudaStream_t stream) {
    const int D = static_cast<int>(p.head_dim);
    int64_t tiles_per_block = fam_tiles_per_block(p.mask, p.query_len, QQ);
    int64_t blocks = (p.query_len + p.mask.block_size - 1) / p.mask.block_size;
    int64_t tiles = blocks * tiles_per_block;
    if (tiles > 0 && p.batch * p.heads > 0) {
      auto kernel = dq_kernel<kMaxD, kFixedD, QQ, QK>;
      size_t smem = dq_smem(D);
      prepare(kernel, smem);
      dim3 grid(static_cast<unsigned>(tiles), rows_grid(p.batch * p.heads));
      launch(kernel, grid, kThreads, smem, stream, p, tiles_per_block, tiles);
      cuda_check_launch("fam: dq kernel");
    }
    int64_t F = p.fam_k ? p.fam_len : 0;
    int64_t seq_tiles = (p.mask.key_count + KK - 1) / KK;
    int64_t fam_tiles = (F + KK - 1) / KK;
    int64_t key_tiles = seq_tiles + p.fam_blocks * fam_tiles;
    if (key_tiles > 0 && p.batch * p.kv_heads > 0) {
      auto kernel = dkv_kernel<kMaxD, kFixedD, KK, KQ>;
      size_t smem = dkv_smem(D);
      prepare(kernel, smem);
      dim3 grid(static_cast<unsigned>(key_tiles), rows_grid(p.batch * p.kv_heads));
      launch(kernel, grid, kThreads, smem, stream, p, seq_tiles, fam_tiles);
      cuda_check_launch("fam: dkv kernel");
    }
  }
};

// One instantiation per file; fam_cuda.cu picks among them.
bool fam_tiled_d64(const FamParams& p, cudaStream_t stream, bool backward, size_t smem_limit);
bool fam_tiled_d128(const FamParams& p, cudaStream_t stream, bool backward, size_t smem_limit);
bool fam_tiled_generic(const FamParams& p, cudaStream_t stream, bool backward, size_t smem_limit);

}  // namespace lmk::kernels::fam_cuda
