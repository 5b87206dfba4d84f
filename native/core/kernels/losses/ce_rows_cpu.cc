// The cross-entropy row kernel on the CPU (kernels/losses/ce_rows.h).
//
// Rows are split over the thread pool; each row is done by one thread, so a
// row's values do not depend on the thread count. One exponential per entry:
//
//   fused (kCeFused): one online pass over the row, chunk by chunk (kChunk
//     entries): the chunk's max (this brings it into L1); if the running max
//     m grew, rescale the running sum by e^{m_old − m}; then e_j = e^{z_j − m}
//     for the chunk, stored in the gradient row itself (float32/float64) or
//     in a per-thread float row (bfloat16/float16: the gradient is rounded
//     once, at the end) and added into kLanes fixed lanes — except the label
//     entries, kept apart (math/log_sum_exp.h) — and the chunk's m remembered. Then the finishing sweep, from cache (L2
//     for a row up to ~1 MiB): g_j = e_j · e^{m_chunk − m} · (Σc)/S, and the label entries. Memory traffic: the logits
//     read once, the gradient written once.
//   stats (kCeStats): the same pass without storing e_j.
//   grad (kCeGrad): g_j = (Σc)/S · e^{z_j − m} from the saved (m, s_other).
//
// Sums use fixed lanes and a fixed combining order; multiply-adds are
// explicit fmas (math/vector_exp.h) and nothing else is contracted
// (-ffp-contract=off), so results are bit-identical across runs, thread
// counts and the ISA target_clones picks. float64 uses exp.
#if defined(__GNUC__) && !defined(__clang__)
// As in wkv4_cpu.cc: lets GCC if-convert the selects of vector_expf and the
// max (we never read floating-point exception flags).
#pragma GCC optimize("no-trapping-math")
// The 64-byte vector helpers below are always inlined into the cloned
// functions, so the ABI note about returning them in the default target is moot.
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/cpu_dispatch.h"
#include "kernels/losses/ce_rows.h"
#include "math/compute_type.h"
#include "math/half.h"
#include "math/log_sum_exp.h"
#include "runtime/thread_pool.h"

namespace lmk::kernels {
namespace {

constexpr int64_t kChunk = 4096;  // entries per chunk: its max, then its exponentials, from L1
constexpr int kLanes = 16;        // one AVX-512 vector of float partial sums

template <typename T>
LMK_ALWAYS_INLINE T zero_of() {
  return T{};
}  // +0 for every storage type

// ---- the hot loops -----------------------------------------------------------

#if defined(__GNUC__)
// GCC does not vectorise a select-based max over lane arrays; its vector
// extension does (vmaxps), and splits the 16 lanes for narrower targets.
typedef float Float16Lanes __attribute__((vector_size(4 * kLanes)));
typedef uint16_t Half16Lanes __attribute__((vector_size(2 * kLanes)));
typedef uint32_t Word16Lanes __attribute__((vector_size(4 * kLanes)));

LMK_ALWAYS_INLINE Float16Lanes load_lanes(const float* p) {
  Float16Lanes v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
// bf16_to_float (math/half.h: the bits moved to the top half) on 16 lanes at once.
LMK_ALWAYS_INLINE Float16Lanes load_lanes(const bf16* p) {
  Half16Lanes h;
  std::memcpy(&h, p, sizeof h);
  Word16Lanes w = __builtin_convertvector(h, Word16Lanes) << 16;
  Float16Lanes v;
  std::memcpy(&v, &w, sizeof v);
  return v;
}

// Max of x[0, n), NaN-propagating: a NaN entry makes the row's max NaN, so
// all of the row's results are NaN.
template <typename S>
LMK_ALWAYS_INLINE float range_max(const S* __restrict x, int64_t n) {
  Float16Lanes lane = Float16Lanes{} - __builtin_inff(), nan = Float16Lanes{};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    Float16Lanes v = load_lanes(x + j);
    lane = v > lane ? v : lane;
    nan = v != v ? v : nan;
  }
  float m = lse_neg_inf<float>();
  for (int l = 0; l < kLanes; ++l) {
    m = lane[l] > m ? lane[l] : m;
    m = nan[l] != nan[l] ? nan[l] : m;
  }
  for (; j < n; ++j) {
    float v = load_compute(x, j);
    m = v > m ? v : m;
    m = v != v ? v : m;
  }
  return m;
}
#else
template <typename S>
LMK_ALWAYS_INLINE float range_max(const S* x, int64_t n) {
  float m = lse_neg_inf<float>();
  for (int64_t j = 0; j < n; ++j) {
    float v = load_compute(x, j);
    m = (v > m || v != v) ? v : m;
  }
  return m;
}
#endif
LMK_ALWAYS_INLINE double range_max(const double* x, int64_t n) {
  double m = lse_neg_inf<double>();
  for (int64_t j = 0; j < n; ++j) m = (x[j] > m || x[j] != x[j]) ? x[j] : m;
  return m;
}

template <typename T, typename A>
LMK_ALWAYS_INLINE void to_compute_range(const T* __restrict z, int64_t n, A* __restrict out) {
  for (int64_t j = 0; j < n; ++j) out[j] = load_compute(z, j);
}

// lane[j mod kLanes] += e^{x_j − m} over x[0, n); with `out`, also out[j] = e^{x_j − m}.
template <typename S, typename A>
LMK_ALWAYS_INLINE void add_exp(const S* __restrict x, int64_t n, A m, A* __restrict lane) {
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) lane[l] += lse_exp<A>(load_compute(x, j + l) - m);
  }
  for (int l = 0; j + l < n; ++l) lane[l] += lse_exp<A>(load_compute(x, j + l) - m);
}
template <typename S, typename A>
LMK_ALWAYS_INLINE void add_exp(const S* __restrict x, int64_t n, A m, A* __restrict lane, A* __restrict out) {
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      A e = lse_exp<A>(load_compute(x, j + l) - m);
      out[j + l] = e;
      lane[l] += e;
    }
  }
  for (int l = 0; j + l < n; ++l) {
    A e = lse_exp<A>(load_compute(x, j + l) - m);
    out[j + l] = e;
    lane[l] += e;
  }
}

template <typename A>
LMK_ALWAYS_INLINE A lane_total(A* lane) {
  for (int width = kLanes / 2; width >= 1; width /= 2) {
    for (int l = 0; l < width; ++l) lane[l] += lane[l + width];
  }
  return lane[0];
}

template <typename T, typename A>
LMK_ALWAYS_INLINE void scale_into(const A* __restrict e, int64_t n, A factor, T* __restrict g) {
  for (int64_t j = 0; j < n; ++j) store_compute(g, j, e[j] * factor);
}

template <typename A>
LMK_ALWAYS_INLINE void scale_in_place(A* e, int64_t n, A factor) {
  for (int64_t j = 0; j < n; ++j) e[j] = e[j] * factor;
}

template <typename T, typename A>
LMK_ALWAYS_INLINE void write_grad(const T* __restrict z, T* __restrict g, int64_t V, A m, A scale) {
  for (int64_t j = 0; j < V; ++j) store_compute(g, j, scale * lse_exp<A>(load_compute(z, j) - m));
}

template <typename T>
LMK_ALWAYS_INLINE void fill(T* __restrict g, int64_t V, T value) {
  for (int64_t j = 0; j < V; ++j) g[j] = value;
}

// Per-thread scratch (bfloat16/float16 logits only): the row's e_j in
// fused mode, and a float16 chunk converted to float; the per-chunk maxima.
template <typename A>
struct RowScratch {
  std::vector<A> values;
  std::vector<A> converted;
  std::vector<A> chunk_max;
};
template <typename A>
RowScratch<A>& row_scratch() {
  thread_local RowScratch<A> scratch;
  return scratch;
}

// One chunk x[0, n) of a row starting at column `start`: updates the
// running (m, s) and, with `exps`, stores e_j. Returns false on a NaN entry.
// (A function, not a lambda: lambdas are not compiled for the target_clones
// ISA of their enclosing function.)
template <typename S, typename A>
LMK_ALWAYS_INLINE bool row_chunk(const S* __restrict x, int64_t n, int64_t start, const int32_t* skip, A* exps,
                                 A* chunk_max_out, A& m, A& s) {
  A chunk = range_max(x, n);
  if (chunk != chunk) {  // NaN in the row
    m = s = chunk;
    return false;
  }
  if (chunk > m) {
    s = lse_rescale(s, m, chunk);
    m = chunk;
  }
  if (chunk_max_out) *chunk_max_out = m;
  if (m == lse_neg_inf<A>()) {  // everything so far is -inf: contributes 0
    if (exps) fill(exps + start, n, A(0));
    return true;
  }
  A lane[kLanes];
  for (int l = 0; l < kLanes; ++l) lane[l] = A(0);
  int64_t from = 0;
  for (int a = 0; a < 2; ++a) {
    int64_t at = skip[a] - start;
    if (at < from || at >= n) continue;
    if (exps) {
      add_exp(x + from, at - from, m, lane, exps + start + from);
      exps[start + at] = A(0);
    } else {
      add_exp(x + from, at - from, m, lane);
    }
    from = at + 1;
  }
  if (exps) {
    add_exp(x + from, n - from, m, lane, exps + start + from);
  } else {
    add_exp(x + from, n - from, m, lane);
  }
  s += lane_total(lane);
  return true;
}

// Row max and s_other (labels excluded). With `exps` (fused mode), also
// e_j = e^{z_j − m_chunk} into exps[0, V) (label entries 0: the gradient
// writes them last) and each chunk's running max into chunk_max.
// float16 chunks are first converted into `convert` (no vector load for them).
template <typename T, typename A>
LMK_ALWAYS_INLINE void row_stats(const T* __restrict z, int64_t V, const CeRowLabels<A>& labels, A* exps, A* convert,
                                 A* chunk_max, A* m_out, A* s_out) {
  int32_t skip[2] = {labels.count > 0 ? labels.y[0] : -1, labels.count > 1 ? labels.y[1] : -1};
  if (skip[1] >= 0 && skip[1] < skip[0]) {
    int32_t tmp = skip[0];
    skip[0] = skip[1];
    skip[1] = tmp;
  }
  A m = lse_neg_inf<A>(), s = A(0);
  int64_t c = 0;
  for (int64_t start = 0; start < V; start += kChunk, ++c) {
    const int64_t n = std::min(kChunk, V - start);
    A* chunk_max_out = chunk_max ? chunk_max + c : nullptr;
    bool ok;
    if constexpr (std::is_same<T, f16>::value) {
      to_compute_range(z + start, n, convert);
      ok = row_chunk<A, A>(convert, n, start, skip, exps, chunk_max_out, m, s);
    } else {
      ok = row_chunk<T, A>(z + start, n, start, skip, exps, chunk_max_out, m, s);
    }
    if (!ok) break;
  }
  *m_out = m;
  *s_out = s;
}

template <typename T>
LMK_ALWAYS_INLINE void ce_row(const CeRowsJob& job, int64_t i) {
  using A = compute_t<T>;
  constexpr bool kSameType = std::is_same<T, A>::value;
  const int64_t V = job.V;
  const T* z = static_cast<const T*>(job.logits) + (i - job.first_row) * V;
  T* g = (job.grad && job.mode != kCeStats) ? static_cast<T*>(job.grad) + (i - job.first_row) * V : nullptr;
  CeRowLabels<A> labels;
  int label_of_slot[2];
  bool kept[2];
  ce_row_labels<A>(job, i, g != nullptr, &labels, label_of_slot, kept);

  if (labels.count == 0 && !job.lse) {
    // Nothing supervised here and no lse wanted: the row is not read at all.
    if (job.mode != kCeGrad) ce_row_store_nll<A>(job, i, nullptr, label_of_slot, kept);
    if (g) fill(g, V, zero_of<T>());
    return;
  }
  const bool all_zero = labels.c[0] == A(0) && labels.c[1] == A(0);

  A m, s_other;
  RowScratch<A>& scratch = row_scratch<A>();
  A* exps = nullptr;
  if (job.mode == kCeGrad) {
    m = static_cast<const A*>(job.row_max)[i];
    s_other = static_cast<const A*>(job.row_sum)[i];
  } else {
    int64_t chunks = (V + kChunk - 1) / kChunk;
    bool fused = g && !all_zero;
    if (fused) {
      if constexpr (kSameType) {
        exps = g;
      } else {
        if (scratch.values.size() < static_cast<size_t>(V)) scratch.values.resize(static_cast<size_t>(V));
        exps = scratch.values.data();
      }
      if (scratch.chunk_max.size() < static_cast<size_t>(chunks)) scratch.chunk_max.resize(static_cast<size_t>(chunks));
    }
    if (std::is_same<T, f16>::value && scratch.converted.size() < static_cast<size_t>(kChunk)) {
      scratch.converted.resize(static_cast<size_t>(kChunk));
    }
    row_stats<T, A>(z, V, labels, exps, scratch.converted.data(), fused ? scratch.chunk_max.data() : nullptr, &m,
                    &s_other);
    if (job.row_max) {
      static_cast<A*>(job.row_max)[i] = m;
      static_cast<A*>(job.row_sum)[i] = s_other;
    }
  }
  A z_label[2] = {A(0), A(0)};
  for (int a = 0; a < labels.count; ++a) z_label[a] = load_compute(z, labels.y[a]);
  CeRowResult<A> r = ce_row_result<A>(m, s_other, labels, z_label);

  if (job.mode != kCeGrad) {
    if (job.lse) static_cast<A*>(job.lse)[i] = r.lse;
    ce_row_store_nll<A>(job, i, &r, label_of_slot, kept);
  }
  if (!g) return;
  if (all_zero) {
    fill(g, V, zero_of<T>());
    return;
  }
  if (m != m) {  // a NaN logit: the whole gradient row is NaN
    A nan = m;
    for (int64_t j = 0; j < V; ++j) store_compute(g, j, nan);
    return;
  }
  if (exps) {
    // The finishing sweep: e_j · e^{m_chunk − m} · (Σc)/S, chunk by chunk.
    const A* chunk_max = scratch.chunk_max.data();
    for (int64_t start = 0, c = 0; start < V; start += kChunk, ++c) {
      int64_t n = std::min(kChunk, V - start);
      A factor = chunk_max[c] == lse_neg_inf<A>() ? A(0) : lse_exp<A>(chunk_max[c] - m) * r.scale;
      if constexpr (kSameType) {
        scale_in_place(exps + start, n, factor);
      } else {
        scale_into(exps + start, n, factor, g + start);
      }
    }
  } else {
    write_grad<T, A>(z, g, V, m, r.scale);
  }
  for (int a = 0; a < labels.count; ++a) store_compute(g, labels.y[a], r.g_label[a]);
}

template <typename T>
LMK_ALWAYS_INLINE void ce_row_range(const CeRowsJob& job, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) ce_row<T>(job, i);
}

LMK_CPU_CLONES void ce_row_range_isa(const CeRowsJob& job, int64_t b, int64_t e, float*) {
  ce_row_range<float>(job, b, e);
}
LMK_CPU_CLONES void ce_row_range_isa(const CeRowsJob& job, int64_t b, int64_t e, bf16*) {
  ce_row_range<bf16>(job, b, e);
}
LMK_CPU_CLONES void ce_row_range_isa(const CeRowsJob& job, int64_t b, int64_t e, f16*) { ce_row_range<f16>(job, b, e); }
void ce_row_range_isa(const CeRowsJob& job, int64_t b, int64_t e, double*) { ce_row_range<double>(job, b, e); }

}  // namespace

void ce_rows_cpu(const CeRowsJob& job) {
  if (job.rows == 0) return;
  // About 2^18 entries per parallel chunk, at least one row.
  int64_t grain = std::max<int64_t>(1, (int64_t(1) << 18) / std::max<int64_t>(job.V, 1));
  parallel_for(job.rows, grain, [&](int64_t chunk_begin, int64_t chunk_end) {
    const int64_t begin = job.first_row + chunk_begin, end = job.first_row + chunk_end;
    switch (job.dtype) {
      case DType::Float32: ce_row_range_isa(job, begin, end, static_cast<float*>(nullptr)); break;
      case DType::BFloat16: ce_row_range_isa(job, begin, end, static_cast<bf16*>(nullptr)); break;
      case DType::Float16: ce_row_range_isa(job, begin, end, static_cast<f16*>(nullptr)); break;
      case DType::Float64: ce_row_range_isa(job, begin, end, static_cast<double*>(nullptr)); break;
      default: break;
    }
  });
}

}  // namespace lmk::kernels
