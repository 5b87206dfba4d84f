// TransformerFAM attention on the CPU (kernels/fam/fam.h for the math and the
// two-pass backward). FlashAttention-2's tiling on a CPU core: a task owns a
// tile of kQueryTile query rows (one block, one head) and walks the key tiles
// its rows may see — the block's FAM keys, then the sequence window from the
// memory segment's start to the last row's position — kKeyTile keys at a
// time, skipping tiles nobody sees and masking only tiles that straddle the
// causal edge. Scores exist only as one kQueryTile × kKeyTile tile per task;
// the work is O(T·(m+1)·L·D).
//
// Inner loops are written for the vectoriser: scores are rank-1 updates
// (q[i][d] · kᵀ[d][:]) into accumulators held for a few rows at once, and the
// output is p[i][c] · v[c][:] over register-sized column chunks, so there are
// no floating-point reductions across vector lanes. Row maxima and sums are
// taken over kLanes partial lanes in a fixed order. The hot functions are
// compiled per instruction-set level and picked at load time
// (kernels/cpu_dispatch.h); never -march=native. Every thread writes only its own rows
// (forward, dq) or keys (dk, dv), summing in a fixed order: results do not
// depend on the thread count.
#if defined(__GNUC__) && !defined(__clang__)
// We never read floating-point exception flags; without this GCC keeps the
// selects of the exp and the masks as branches and the loops scalar.
#pragma GCC optimize("no-trapping-math")
#endif
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu_dispatch.h"
#include "kernels/fam/fam.h"
#include "math/attention_math.h"
#include "math/compute_type.h"
#include "math/fam_mask.h"
#include "math/half.h"
#include "runtime/error.h"
#include "runtime/thread_pool.h"

namespace lmk::kernels {
namespace {

constexpr int kQueryTile = 64;  // query rows per task
constexpr int kKeyTile = 64;    // keys per tile
constexpr int kRowBlock = 4;    // rows updated together in the tile products
constexpr int kColChunk = 32;   // output columns held in registers per row; row strides are multiples
constexpr int kLanes = 16;      // partial lanes of the row max / sum

int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

// ---- tile products -----------------------------------------------------------

// out[r][c] = Σ_d a[r][d] · bt[d][c] for r < R, c < C; a has row stride lda,
// bt is D × C. All R rows are computed (callers pad with zero rows).
template <int R, int C, typename Acc>
LMK_ALWAYS_INLINE void tile_product(const Acc* __restrict a, int64_t lda, const Acc* __restrict bt, int64_t D,
                                    Acc* __restrict out) {
  static_assert(R % kRowBlock == 0, "row tile must be a multiple of the row block");
  for (int r = 0; r < R; r += kRowBlock) {
    Acc acc[kRowBlock][C];
    for (int i = 0; i < kRowBlock; ++i)
      for (int c = 0; c < C; ++c) acc[i][c] = 0;
    for (int64_t d = 0; d < D; ++d) {
      const Acc* __restrict brow = bt + d * C;
      for (int i = 0; i < kRowBlock; ++i) {
        Acc x = a[(r + i) * lda + d];
        for (int c = 0; c < C; ++c) acc[i][c] += x * brow[c];
      }
    }
    for (int i = 0; i < kRowBlock; ++i)
      for (int c = 0; c < C; ++c) out[(r + i) * C + c] = acc[i][c];
  }
}

// acc[r][:] += Σ_{c < n} w[r][c] · b[c][:] for r < R; w is R × W (row stride
// W), b has row stride ldb, acc row stride ldacc; ld* are multiples of kColChunk.
template <int R, int W, typename Acc>
LMK_ALWAYS_INLINE void tile_accumulate(const Acc* __restrict w, int n, const Acc* __restrict b, int64_t ldb,
                                       int64_t columns, Acc* __restrict acc, int64_t ldacc) {
  static_assert(R % kRowBlock == 0, "row tile must be a multiple of the row block");
  for (int r = 0; r < R; r += kRowBlock) {
    for (int64_t d0 = 0; d0 < columns; d0 += kColChunk) {
      Acc part[kRowBlock][kColChunk];
      for (int i = 0; i < kRowBlock; ++i)
        for (int l = 0; l < kColChunk; ++l) part[i][l] = acc[(r + i) * ldacc + d0 + l];
      for (int c = 0; c < n; ++c) {
        const Acc* __restrict brow = b + c * ldb + d0;
        for (int i = 0; i < kRowBlock; ++i) {
          Acc x = w[(r + i) * W + c];
          for (int l = 0; l < kColChunk; ++l) part[i][l] += x * brow[l];
        }
      }
      for (int i = 0; i < kRowBlock; ++i)
        for (int l = 0; l < kColChunk; ++l) acc[(r + i) * ldacc + d0 + l] = part[i][l];
    }
  }
}

template <int N, typename Acc>
LMK_ALWAYS_INLINE Acc row_max(const Acc* __restrict s) {
  Acc lanes[kLanes];
  for (int l = 0; l < kLanes; ++l) lanes[l] = attention_neg_inf<Acc>();
  for (int c = 0; c < N; c += kLanes)
    for (int l = 0; l < kLanes; ++l) lanes[l] = s[c + l] > lanes[l] ? s[c + l] : lanes[l];
  Acc m = lanes[0];
  for (int l = 1; l < kLanes; ++l) m = lanes[l] > m ? lanes[l] : m;
  return m;
}

// s[c] ← e^{s[c] − offset}; returns the sum over the row (fixed lane order).
template <int N, typename Acc>
LMK_ALWAYS_INLINE Acc exp_row(Acc* __restrict s, Acc offset) {
  Acc lanes[kLanes];
  for (int l = 0; l < kLanes; ++l) lanes[l] = 0;
  for (int c = 0; c < N; c += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      Acc e = softmax_weight<Acc>(s[c + l], offset);
      s[c + l] = e;
      lanes[l] += e;
    }
  Acc sum = 0;
  for (int l = 0; l < kLanes; ++l) sum += lanes[l];
  return sum;
}

// ---- the hot tile steps, compiled per instruction set ---------------------------
// Small non-template functions (float and double) carry target_clones; the
// task loops around them are compiled once. Each call does O(tile² · D) or
// O(tile²) work, so the call costs nothing.

static_assert(kQueryTile == kKeyTile, "the cloned tile steps assume square tiles");
constexpr int kTile = kQueryTile;

#define LMK_FAM_HOT_STEPS(Acc, suffix)                                                                                 \
  /* out = a · bt for a kTile-row a (stride lda) and bt (D × kTile) */                                               \
  LMK_CPU_CLONES void product_##suffix(const Acc* a, int64_t lda, const Acc* bt, int64_t D, Acc* out) {                \
    tile_product<kTile, kTile>(a, lda, bt, D, out);                                                                    \
  }                                                                                                                    \
  /* acc[r][:] += Σ_{c<n} w[r][c] · b[c][:] for kTile rows */                                                        \
  LMK_CPU_CLONES void accumulate_##suffix(const Acc* w, int n, const Acc* b, int64_t ld, Acc* acc) {                   \
    tile_accumulate<kTile, kTile>(w, n, b, ld, ld, acc, ld);                                                           \
  }                                                                                                                    \
  /* forward: online softmax over rows [0, nq) of s (masked scores −inf); s ← weights, o rescaled */               \
  LMK_CPU_CLONES void softmax_step_##suffix(Acc* s, int64_t nq, Acc* m, Acc* l, Acc* o, int64_t ld) {                  \
    for (int64_t i = 0; i < nq; ++i) {                                                                                 \
      Acc* row = s + i * kTile;                                                                                        \
      Acc factor = online_softmax_grow<Acc>(&m[i], row_max<kTile>(row));                                               \
      Acc sum = exp_row<kTile>(row, online_softmax_offset<Acc>(m[i]));                                                 \
      l[i] = l[i] * factor + sum;                                                                                      \
      if (factor != Acc(1)) {                                                                                          \
        Acc* orow = o + i * ld;                                                                                        \
        for (int64_t d = 0; d < ld; ++d) orow[d] *= factor;                                                            \
      }                                                                                                                \
    }                                                                                                                  \
  }                                                                                                                    \
  /* query-major s ← p·(dp − Δ) with p = e^{s − lse} per row; rows nq.. zeroed */                              \
  LMK_CPU_CLONES void score_grads_rows_##suffix(Acc* s, const Acc* dp, int64_t nq, const Acc* lse, const Acc* delta) { \
    for (int64_t i = 0; i < nq; ++i) {                                                                                 \
      Acc* __restrict srow = s + i * kTile;                                                                            \
      const Acc* __restrict dprow = dp + i * kTile;                                                                    \
      for (int c = 0; c < kTile; ++c)                                                                                  \
        srow[c] = softmax_score_grad<Acc>(softmax_weight<Acc>(srow[c], lse[i]), dprow[c], delta[i]);                   \
    }                                                                                                                  \
    for (int64_t i = nq; i < kTile; ++i)                                                                               \
      for (int c = 0; c < kTile; ++c) s[i * kTile + c] = 0;                                                            \
  }                                                                                                                    \
  /* key-major: st ← p, dpt ← p·(dpt − Δ) per query column; key rows n.. zeroed */                             \
  LMK_CPU_CLONES void score_grads_columns_##suffix(Acc* st, Acc* dpt, int n, const Acc* lse, const Acc* delta) {       \
    for (int c = 0; c < n; ++c) {                                                                                      \
      Acc* __restrict srow = st + c * kTile;                                                                           \
      Acc* __restrict dsrow = dpt + c * kTile;                                                                         \
      for (int i = 0; i < kTile; ++i) {                                                                                \
        Acc pw = softmax_weight<Acc>(srow[i], lse[i]);                                                                 \
        srow[i] = pw;                                                                                                  \
        dsrow[i] = softmax_score_grad<Acc>(pw, dsrow[i], delta[i]);                                                    \
      }                                                                                                                \
    }                                                                                                                  \
    for (int c = n; c < kTile; ++c)                                                                                    \
      for (int i = 0; i < kTile; ++i) st[c * kTile + i] = dpt[c * kTile + i] = 0;                                      \
  }
LMK_FAM_HOT_STEPS(float, f32)
LMK_FAM_HOT_STEPS(double, f64)
#undef LMK_FAM_HOT_STEPS

// Overloads so the task templates below can call the steps for either type.
inline void product(const float* a, int64_t lda, const float* bt, int64_t D, float* out) {
  product_f32(a, lda, bt, D, out);
}
inline void product(const double* a, int64_t lda, const double* bt, int64_t D, double* out) {
  product_f64(a, lda, bt, D, out);
}
inline void accumulate(const float* w, int n, const float* b, int64_t ld, float* acc) {
  accumulate_f32(w, n, b, ld, acc);
}
inline void accumulate(const double* w, int n, const double* b, int64_t ld, double* acc) {
  accumulate_f64(w, n, b, ld, acc);
}
inline void softmax_step(float* s, int64_t nq, float* m, float* l, float* o, int64_t ld) {
  softmax_step_f32(s, nq, m, l, o, ld);
}
inline void softmax_step(double* s, int64_t nq, double* m, double* l, double* o, int64_t ld) {
  softmax_step_f64(s, nq, m, l, o, ld);
}
inline void score_grads_rows(float* s, const float* dp, int64_t nq, const float* lse, const float* delta) {
  score_grads_rows_f32(s, dp, nq, lse, delta);
}
inline void score_grads_rows(double* s, const double* dp, int64_t nq, const double* lse, const double* delta) {
  score_grads_rows_f64(s, dp, nq, lse, delta);
}
inline void score_grads_columns(float* st, float* dpt, int n, const float* lse, const float* delta) {
  score_grads_columns_f32(st, dpt, n, lse, delta);
}
inline void score_grads_columns(double* st, double* dpt, int n, const double* lse, const double* delta) {
  score_grads_columns_f64(st, dpt, n, lse, delta);
}

// ---- loading tiles ---------------------------------------------------------

// rows[r][d] = scale · src[r][d] for r < n (row stride D in src, ld in rows); rows n..R zeroed.
template <typename T, typename Acc>
LMK_ALWAYS_INLINE void load_rows(const T* __restrict src, int64_t n, int64_t R, int64_t D, Acc scale,
                                 Acc* __restrict rows, int64_t ld) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t d = 0; d < D; ++d) rows[r * ld + d] = scale * to_compute(src[r * D + d]);
  for (int64_t r = n; r < R; ++r)
    for (int64_t d = 0; d < D; ++d) rows[r * ld + d] = 0;
}

// cols[d][r] = scale · src[r][d]: the transposed tile (C columns, zero past n).
template <typename T, typename Acc>
LMK_ALWAYS_INLINE void load_columns(const T* __restrict src, int64_t n, int C, int64_t D, Acc scale,
                                    Acc* __restrict cols) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t d = 0; d < D; ++d) cols[d * C + r] = scale * to_compute(src[r * D + d]);
  for (int64_t d = 0; d < D; ++d)
    for (int64_t r = n; r < C; ++r) cols[d * C + r] = 0;
}

// ---- shapes and indexing -------------------------------------------------------

// The call's layout (kernels/fam/fam.h) and this kernel's tiling of it.
struct Geometry : FamLayout {
  int64_t ld;                                  // row stride of the tile buffers
  int64_t query_tiles_per_block, query_tiles;  // per (b, h)
  int64_t seq_key_tiles, fam_key_tiles;        // per (b, kvh): sequence tiles, FAM tiles per FAM block
  explicit Geometry(const FamParams& p) : FamLayout(p), ld(round_up(p.head_dim, kColChunk)) {
    query_tiles_per_block = fam_tiles_per_block(p.mask, Tq, kQueryTile);
    int64_t query_blocks = (Tq + p.mask.block_size - 1) / p.mask.block_size;
    query_tiles = query_blocks * query_tiles_per_block;
    seq_key_tiles = (Tk + kKeyTile - 1) / kKeyTile;
    fam_key_tiles = (F + kKeyTile - 1) / kKeyTile;
  }
};

// Per-thread tile buffers (zero-initialised once, so padding is always finite).
template <typename Acc>
struct Buffers {
  std::vector<Acc> q, q_t, g, g_t, k, k_t, v, v_t, s, dp, acc, acc2;
  std::vector<Acc> row_max, row_sum, row_lse, row_delta;
  explicit Buffers(int64_t D, int64_t ld)
      : q(kQueryTile * ld),
        q_t(D * kQueryTile),
        g(kQueryTile * ld),
        g_t(D * kQueryTile),
        k(kKeyTile * ld),
        k_t(D * kKeyTile),
        v(kKeyTile * ld),
        v_t(D * kKeyTile),
        s(kQueryTile * kKeyTile),
        dp(kQueryTile * kKeyTile),
        acc(std::max<int64_t>(kQueryTile, kKeyTile) * ld),
        acc2(kKeyTile * ld),
        row_max(kQueryTile),
        row_sum(kQueryTile),
        row_lse(kQueryTile),
        row_delta(kQueryTile) {}
};

// Marks invisible scores of a query-major tile s[i][c] (query q0+i, key
// column c) with −inf: columns at or past n always, and under a partial mask
// the sequence keys j0 + c outside query q0+i's window.
template <typename Acc>
LMK_ALWAYS_INLINE void mask_query_major(Acc* s, int64_t rows, int n, int kind, const FamMask& mask, int64_t q0,
                                        int64_t j0) {
  const Acc neg_inf = attention_neg_inf<Acc>();
  for (int64_t i = 0; i < rows; ++i) {
    Acc* row = s + i * kKeyTile;
    for (int c = n; c < kKeyTile; ++c) row[c] = neg_inf;
    if (kind == kFamTilePartial)
      for (int c = 0; c < n; ++c)
        if (!fam_key_visible(mask, q0 + i, j0 + c)) row[c] = neg_inf;
  }
}

// One tile of keys a query tile reads: n rows at k/v, how it is masked, and
// (for sequence keys) the position of its first key.
template <typename T>
struct KeyTile {
  const T* k;
  const T* v;
  int n;
  int kind;
  int64_t j0;
};

// The key tiles of query tile [q0, q1) (one block): the block's FAM keys,
// then the sequence window from the memory segment's start to the last row,
// without the tiles none of the rows sees.
template <typename T>
LMK_ALWAYS_INLINE void collect_key_tiles(const FamParams& p, const Geometry& g, int64_t b, int64_t kvh, int64_t q0,
                                         int64_t q1, std::vector<KeyTile<T>>* tiles) {
  tiles->clear();
  const int64_t block = fam_block_of(p.mask, q0);
  if (g.F > 0) {
    const T* fam_k = static_cast<const T*>(p.fam_k);
    const T* fam_v = static_cast<const T*>(p.fam_v);
    for (int64_t f0 = 0; f0 < g.F; f0 += kKeyTile) {
      int n = static_cast<int>(std::min<int64_t>(kKeyTile, g.F - f0));
      int64_t off = g.fam_offset(b, kvh, block, f0);
      tiles->push_back({fam_k + off, fam_v + off, n, kFamTileFull, 0});
    }
  }
  const T* k = static_cast<const T*>(p.k);
  const T* v = static_cast<const T*>(p.v);
  const int64_t kb = fam_window_begin(p.mask, block);
  const int64_t ke = std::min(fam_window_end(p.mask, q1 - 1), g.Tk);
  for (int64_t k0 = kb; k0 < ke; k0 += kKeyTile) {
    int n = static_cast<int>(std::min<int64_t>(kKeyTile, ke - k0));
    int kind = fam_tile_kind(p.mask, q0, q1, k0, k0 + n);
    if (kind == kFamTileSkip) continue;
    int64_t off = g.k_offset(b, kvh, k0);
    tiles->push_back({k + off, v + off, n, kind, k0});
  }
}

// ---- forward -------------------------------------------------------------------

template <typename T>
void forward_range(const FamParams& p, int64_t begin, int64_t end) {
  using Acc = compute_t<T>;
  const Geometry g(p);
  const int64_t D = g.D, ld = g.ld;
  const T* q = static_cast<const T*>(p.q);
  T* out = static_cast<T*>(p.out);
  Acc* lse = static_cast<Acc*>(p.lse);
  Buffers<Acc> buf(D, ld);
  std::vector<KeyTile<T>> tiles;
  Acc* qs = buf.q.data();
  Acc* kt = buf.k_t.data();
  Acc* vs = buf.v.data();
  Acc* s = buf.s.data();
  Acc* o = buf.acc.data();
  Acc* m = buf.row_max.data();
  Acc* l = buf.row_sum.data();

  for (int64_t item = begin; item < end; ++item) {
    int64_t tile = item % g.query_tiles;
    int64_t h = (item / g.query_tiles) % g.H;
    int64_t b = item / (g.query_tiles * g.H);
    int64_t q0, q1;
    fam_query_tile(p.mask, g.Tq, kQueryTile, g.query_tiles_per_block, tile, &q0, &q1);
    if (q0 >= q1) continue;
    const int64_t nq = q1 - q0;
    const int64_t kvh = h / g.group;
    load_rows(q + g.q_offset(b, h, q0), nq, kQueryTile, D, static_cast<Acc>(p.scale), qs, ld);
    std::fill(o, o + kQueryTile * ld, Acc(0));
    for (int i = 0; i < kQueryTile; ++i) {
      m[i] = attention_neg_inf<Acc>();
      l[i] = 0;
    }

    collect_key_tiles(p, g, b, kvh, q0, q1, &tiles);
    for (const KeyTile<T>& t : tiles) {
      load_columns(t.k, t.n, kKeyTile, D, Acc(1), kt);
      load_rows(t.v, t.n, 0, D, Acc(1), vs, ld);
      product(qs, ld, kt, D, s);
      mask_query_major(s, nq, t.n, t.kind, p.mask, q0, t.j0);
      softmax_step(s, nq, m, l, o, ld);
      accumulate(s, t.n, vs, ld, o);
    }

    for (int64_t i = 0; i < nq; ++i) {
      Acc inv = Acc(1) / l[i];
      T* orow = out + g.q_offset(b, h, q0 + i);
      for (int64_t d = 0; d < D; ++d) store_compute(orow, d, o[i * ld + d] * inv);
      lse[g.stat_offset(b, h, q0 + i)] = online_softmax_lse<Acc>(m[i], l[i]);
    }
  }
}

// ---- backward, pass 1: Δ and dq per query tile ------------------------------

template <typename T>
void backward_dq_range(const FamParams& p, int64_t begin, int64_t end) {
  using Acc = compute_t<T>;
  const Geometry g(p);
  const int64_t D = g.D, ld = g.ld;
  const T* q = static_cast<const T*>(p.q);
  const T* out = static_cast<const T*>(p.out);
  const T* grad_out = static_cast<const T*>(p.grad_out);
  const Acc* lse = static_cast<const Acc*>(p.lse);
  Acc* delta = static_cast<Acc*>(p.delta);
  T* grad_q = static_cast<T*>(p.grad_q);
  Buffers<Acc> buf(D, ld);
  std::vector<KeyTile<T>> tiles;
  Acc* qs = buf.q.data();
  Acc* go = buf.g.data();
  Acc* kt = buf.k_t.data();
  Acc* ks = buf.k.data();
  Acc* vt = buf.v_t.data();
  Acc* s = buf.s.data();
  Acc* dp = buf.dp.data();
  Acc* dq = buf.acc.data();
  Acc* row_lse = buf.row_lse.data();
  Acc* row_delta = buf.row_delta.data();

  for (int64_t item = begin; item < end; ++item) {
    int64_t tile = item % g.query_tiles;
    int64_t h = (item / g.query_tiles) % g.H;
    int64_t b = item / (g.query_tiles * g.H);
    int64_t q0, q1;
    fam_query_tile(p.mask, g.Tq, kQueryTile, g.query_tiles_per_block, tile, &q0, &q1);
    if (q0 >= q1) continue;
    const int64_t nq = q1 - q0;
    const int64_t kvh = h / g.group;
    load_rows(q + g.q_offset(b, h, q0), nq, kQueryTile, D, static_cast<Acc>(p.scale), qs, ld);
    load_rows(grad_out + g.q_offset(b, h, q0), nq, kQueryTile, D, Acc(1), go, ld);
    for (int64_t i = 0; i < nq; ++i) {
      const T* orow = out + g.q_offset(b, h, q0 + i);
      Acc sum = 0;
      for (int64_t d = 0; d < D; ++d) sum += go[i * ld + d] * to_compute(orow[d]);
      row_delta[i] = sum;
      delta[g.stat_offset(b, h, q0 + i)] = sum;
      row_lse[i] = lse[g.stat_offset(b, h, q0 + i)];
    }
    std::fill(dq, dq + kQueryTile * ld, Acc(0));

    collect_key_tiles(p, g, b, kvh, q0, q1, &tiles);
    for (const KeyTile<T>& t : tiles) {
      load_columns(t.k, t.n, kKeyTile, D, Acc(1), kt);
      load_rows(t.k, t.n, 0, D, Acc(1), ks, ld);
      load_columns(t.v, t.n, kKeyTile, D, Acc(1), vt);
      product(qs, ld, kt, D, s);
      product(go, ld, vt, D, dp);
      mask_query_major(s, nq, t.n, t.kind, p.mask, q0, t.j0);
      score_grads_rows(s, dp, nq, row_lse, row_delta);
      accumulate(s, t.n, ks, ld, dq);
    }

    const Acc scale = static_cast<Acc>(p.scale);
    for (int64_t i = 0; i < nq; ++i) {
      T* grow = grad_q + g.q_offset(b, h, q0 + i);
      for (int64_t d = 0; d < D; ++d) store_compute(grow, d, scale * dq[i * ld + d]);
    }
  }
}

// ---- backward, pass 2: dk and dv per key tile --------------------------------

template <typename T>
void backward_dkv_range(const FamParams& p, int64_t begin, int64_t end) {
  using Acc = compute_t<T>;
  const Geometry g(p);
  const int64_t D = g.D, ld = g.ld;
  const T* q = static_cast<const T*>(p.q);
  const T* k = static_cast<const T*>(p.k);
  const T* v = static_cast<const T*>(p.v);
  const T* fam_k = static_cast<const T*>(p.fam_k);
  const T* fam_v = static_cast<const T*>(p.fam_v);
  const T* grad_out = static_cast<const T*>(p.grad_out);
  const Acc* lse = static_cast<const Acc*>(p.lse);
  const Acc* delta = static_cast<const Acc*>(p.delta);
  Buffers<Acc> buf(D, ld);
  Acc* ks = buf.k.data();
  Acc* vs = buf.v.data();
  Acc* qt = buf.q_t.data();
  Acc* qs = buf.q.data();
  Acc* got = buf.g_t.data();
  Acc* go = buf.g.data();
  Acc* st = buf.s.data();  // [key][query], kKeyTile × kQueryTile
  Acc* dpt = buf.dp.data();
  Acc* dk = buf.acc.data();
  Acc* dv = buf.acc2.data();
  Acc* tile_lse = buf.row_lse.data();
  Acc* tile_delta = buf.row_delta.data();
  const int64_t tiles_per_kv = g.seq_key_tiles + g.NF * g.fam_key_tiles;

  for (int64_t item = begin; item < end; ++item) {
    int64_t tile = item % tiles_per_kv;
    int64_t kvh = (item / tiles_per_kv) % g.Hkv;
    int64_t b = item / (tiles_per_kv * g.Hkv);
    const bool is_fam = tile >= g.seq_key_tiles;
    int64_t k0, n64, fam_block = 0;
    const T *k_rows, *v_rows;
    if (!is_fam) {
      k0 = tile * kKeyTile;
      n64 = std::min<int64_t>(kKeyTile, g.Tk - k0);
      k_rows = k + g.k_offset(b, kvh, k0);
      v_rows = v + g.k_offset(b, kvh, k0);
    } else {
      int64_t f = tile - g.seq_key_tiles;
      fam_block = f / g.fam_key_tiles;
      k0 = (f % g.fam_key_tiles) * kKeyTile;
      n64 = std::min<int64_t>(kKeyTile, g.F - k0);
      k_rows = fam_k + g.fam_offset(b, kvh, fam_block, k0);
      v_rows = fam_v + g.fam_offset(b, kvh, fam_block, k0);
    }
    const int n = static_cast<int>(n64);
    load_rows(k_rows, n, kKeyTile, D, Acc(1), ks, ld);
    load_rows(v_rows, n, kKeyTile, D, Acc(1), vs, ld);
    std::fill(dk, dk + kKeyTile * ld, Acc(0));
    std::fill(dv, dv + kKeyTile * ld, Acc(0));

    // The queries that read this tile: block fam_block for FAM keys, else the
    // window's reverse image (fam_queries_seeing), as tiles within blocks.
    int64_t qb, qe;
    if (is_fam) {
      qb = fam_block * p.mask.block_size;
      qe = std::min(g.Tq, qb + p.mask.block_size);
    } else {
      fam_queries_seeing(p.mask, g.Tq, k0, k0 + n, &qb, &qe);
    }
    for (int64_t gi = 0; gi < g.group; ++gi) {
      const int64_t h = kvh * g.group + gi;
      int64_t q0 = qb;
      while (q0 < qe) {
        const int64_t block_end = std::min(g.Tq, (fam_block_of(p.mask, q0) + 1) * p.mask.block_size);
        const int64_t q1 = std::min({q0 + kQueryTile, block_end, qe});
        const int64_t nq = q1 - q0;
        int kind = is_fam ? kFamTileFull : fam_tile_kind(p.mask, q0, q1, k0, k0 + n);
        if (kind != kFamTileSkip) {
          const int64_t qoff = g.q_offset(b, h, q0);
          load_columns(q + qoff, nq, kQueryTile, D, static_cast<Acc>(p.scale), qt);
          load_rows(q + qoff, nq, kQueryTile, D, static_cast<Acc>(p.scale), qs, ld);
          load_columns(grad_out + qoff, nq, kQueryTile, D, Acc(1), got);
          load_rows(grad_out + qoff, nq, kQueryTile, D, Acc(1), go, ld);
          product(ks, ld, qt, D, st);
          product(vs, ld, got, D, dpt);
          // Padding queries get lse = +inf, so their weights come out 0.
          for (int64_t i = 0; i < kQueryTile; ++i) {
            tile_lse[i] = i < nq ? lse[g.stat_offset(b, h, q0 + i)] : -attention_neg_inf<Acc>();
            tile_delta[i] = i < nq ? delta[g.stat_offset(b, h, q0 + i)] : Acc(0);
          }
          if (kind == kFamTilePartial) {
            for (int c = 0; c < n; ++c)
              for (int64_t i = 0; i < nq; ++i)
                if (!fam_key_visible(p.mask, q0 + i, k0 + c)) st[c * kQueryTile + i] = attention_neg_inf<Acc>();
          }
          // st ← p, dpt ← ds (key-major); padding rows and columns and invisible pairs are 0.
          score_grads_columns(st, dpt, n, tile_lse, tile_delta);
          accumulate(st, static_cast<int>(nq), go, ld, dv);
          accumulate(dpt, static_cast<int>(nq), qs, ld, dk);
        }
        q0 = q1;
      }
    }

    T* gk = static_cast<T*>(is_fam ? p.grad_fam_k : p.grad_k);
    T* gv = static_cast<T*>(is_fam ? p.grad_fam_v : p.grad_v);
    int64_t off = is_fam ? g.fam_offset(b, kvh, fam_block, k0) : g.k_offset(b, kvh, k0);
    for (int c = 0; c < n; ++c)
      for (int64_t d = 0; d < D; ++d) {
        store_compute(gk, off + c * D + d, dk[c * ld + d]);
        store_compute(gv, off + c * D + d, dv[c * ld + d]);
      }
  }
}

// ---- dispatch on the storage type ---------------------------------------------

template <typename Fn>
void dispatch_storage(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::Float32: fn(float{}); break;
    case DType::BFloat16: fn(bf16{}); break;
    case DType::Float16: fn(f16{}); break;
    case DType::Float64: fn(double{}); break;
    default: throw_type_error("fam: unsupported dtype ", dtype_name(dtype));
  }
}

}  // namespace

void fam_forward_cpu(const FamParams& p) {
  const Geometry g(p);
  dispatch_storage(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    parallel_for(g.B * g.H * g.query_tiles, 1, [&](int64_t b, int64_t e) { forward_range<T>(p, b, e); });
  });
}

void fam_backward_cpu(const FamParams& p) {
  const Geometry g(p);
  const int64_t tiles_per_kv = g.seq_key_tiles + g.NF * g.fam_key_tiles;
  dispatch_storage(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    parallel_for(g.B * g.H * g.query_tiles, 1, [&](int64_t b, int64_t e) { backward_dq_range<T>(p, b, e); });
    // Pass 2 reads the Δ written by pass 1.
    parallel_for(g.B * g.Hkv * tiles_per_kv, 1, [&](int64_t b, int64_t e) { backward_dkv_range<T>(p, b, e); });
  });
}

}  // namespace lmk::kernels
