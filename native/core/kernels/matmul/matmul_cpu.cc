// GEMM on the CPU: OpenBLAS when loaded, else our blocked kernel.
//
// Our kernel follows the usual (Goto/BLIS) structure. For each block of NC
// columns and KC steps of k, B's block is packed into NR-wide column panels
// ([k][NR], zero-padded), then tasks (an MC-row block of A × a group of B's
// panels) run on the thread pool: each packs its A block into MR-tall row
// panels ([k][MR]) and runs the micro-kernel over every (MR×NR) tile. The
// micro-kernel keeps the whole tile in vector registers (GCC vector
// extensions: one broadcast of A and NR/VW vector multiply-adds per k) and
// adds it to C (overwrites on the first KC step). Packing converts bf16/f16
// to float, so the kernel only exists for float and double; edge tiles go
// through a local tile buffer.
//
// The micro-kernel is compiled three times — x86-64-v4, i.e. AVX-512 (6×32
// floats), x86-64-v3, i.e. AVX2+FMA (6×16), and baseline x86-64 (4×8) — and
// picked once by cpu_isa_level() (kernels/cpu_dispatch.h), never -march=native. Contraction to FMA is allowed
// in this file (a GEMM's result legitimately depends on it, as with any BLAS).
#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/cpu_dispatch.h"
#include "kernels/elementwise/float_dispatch.h"
#include "kernels/matmul/gemv.h"
#include "kernels/matmul/matmul.h"
#include "math/compute_type.h"
#include "runtime/blas_loader.h"
#include "runtime/thread_pool.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

namespace lmk::kernels {
namespace {

constexpr int64_t kKC = 256;   // k per packed block
constexpr int64_t kMC = 48;    // rows of A per task (a multiple of every MR)
constexpr int64_t kNC = 4096;  // columns of B per packed block

template <typename S, int W>
struct VecOf {
  typedef S type __attribute__((vector_size(W * sizeof(S))));
};

// One packed-block task: A rows [0, mc) of a packed A block against B panels
// [panel_begin, panel_end) of a packed B block, into C (ldc apart).
template <typename S>
struct GemmBlock {
  const S* apack = nullptr;
  int64_t mc = 0;
  const S* bpack = nullptr;
  int64_t panel_begin = 0, panel_end = 0;
  int64_t nc = 0;  // columns of the packed B block (the last panel may be partial)
  int64_t kc = 0;
  S* c = nullptr;  // C at (row 0 of this A block, column 0 of the B block)
  int64_t ldc = 0;
  bool accumulate = false;
};

// acc = Σ_k ap[k][0..MR) ⊗ bp[k][0..NR); c (+)= acc.
template <typename S, int MR, int NV, int VW>
LMK_ALWAYS_INLINE void micro_tile(int64_t kc, const S* __restrict ap, const S* __restrict bp, S* __restrict c,
                                  int64_t ldc, bool accumulate) {
  typedef typename VecOf<S, VW>::type V;
  constexpr int NR = NV * VW;
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = V{};
  for (int64_t k = 0; k < kc; ++k) {
    V b[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) std::memcpy(&b[v], bp + k * NR + v * VW, sizeof(V));
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      S a = ap[k * MR + r];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] += b[v] * a;
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      V out = acc[r][v];
      if (accumulate) {
        V old;
        std::memcpy(&old, c + r * ldc + v * VW, sizeof(V));
        out += old;
      }
      std::memcpy(c + r * ldc + v * VW, &out, sizeof(V));
    }
  }
}

template <typename S, int MR, int NV, int VW>
LMK_ALWAYS_INLINE void compute_block(const GemmBlock<S>& g) {
  constexpr int NR = NV * VW;
  for (int64_t q = g.panel_begin; q < g.panel_end; ++q) {
    const S* bp = g.bpack + q * g.kc * NR;
    int64_t j0 = q * NR;
    int64_t nr = g.nc - j0 < NR ? g.nc - j0 : NR;
    for (int64_t i0 = 0; i0 < g.mc; i0 += MR) {
      const S* ap = g.apack + (i0 / MR) * g.kc * MR;
      int64_t mr = g.mc - i0 < MR ? g.mc - i0 : MR;
      S* c = g.c + i0 * g.ldc + j0;
      if (mr == MR && nr == NR) {
        micro_tile<S, MR, NV, VW>(g.kc, ap, bp, c, g.ldc, g.accumulate);
      } else {
        alignas(64) S tile[MR * NR];
        micro_tile<S, MR, NV, VW>(g.kc, ap, bp, tile, NR, false);
        for (int64_t r = 0; r < mr; ++r) {
          for (int64_t j = 0; j < nr; ++j) {
            c[r * g.ldc + j] = g.accumulate ? c[r * g.ldc + j] + tile[r * NR + j] : tile[r * NR + j];
          }
        }
      }
    }
  }
}

template <typename S>
struct GemmIsa {
  const char* name;
  int mr, nr;
  void (*block)(const GemmBlock<S>&);
};

void block_f32_baseline(const GemmBlock<float>& g) { compute_block<float, 4, 2, 4>(g); }
void block_f64_baseline(const GemmBlock<double>& g) { compute_block<double, 4, 2, 2>(g); }

#if LMK_CPU_TARGETS_X86
LMK_CPU_TARGET_V3 void block_f32_avx2(const GemmBlock<float>& g) { compute_block<float, 6, 2, 8>(g); }
LMK_CPU_TARGET_V3 void block_f64_avx2(const GemmBlock<double>& g) { compute_block<double, 6, 2, 4>(g); }
LMK_CPU_TARGET_V4 void block_f32_avx512(const GemmBlock<float>& g) { compute_block<float, 6, 2, 16>(g); }
LMK_CPU_TARGET_V4 void block_f64_avx512(const GemmBlock<double>& g) { compute_block<double, 6, 2, 8>(g); }
#endif

const GemmIsa<float>& isa_for(float*) {
#if LMK_CPU_TARGETS_X86
  static const GemmIsa<float> avx512{"avx512", 6, 32, block_f32_avx512};
  static const GemmIsa<float> avx2{"avx2", 6, 16, block_f32_avx2};
  if (cpu_isa_level() == 2) return avx512;
  if (cpu_isa_level() == 1) return avx2;
#endif
  static const GemmIsa<float> baseline{"baseline", 4, 8, block_f32_baseline};
  return baseline;
}

const GemmIsa<double>& isa_for(double*) {
#if LMK_CPU_TARGETS_X86
  static const GemmIsa<double> avx512{"avx512", 6, 16, block_f64_avx512};
  static const GemmIsa<double> avx2{"avx2", 6, 8, block_f64_avx2};
  if (cpu_isa_level() == 2) return avx512;
  if (cpu_isa_level() == 1) return avx2;
#endif
  static const GemmIsa<double> baseline{"baseline", 4, 4, block_f64_baseline};
  return baseline;
}

// A view of one operand: element (i, k) at data[i*rs + k*cs].
template <typename T>
struct Operand {
  const T* data;
  int64_t rs, cs;
};

// A rows [i0, i0+mc) × k [k0, k0+kc) into MR-tall panels [k][MR], zero-padded.
template <typename T, typename S>
void pack_a(const Operand<T>& a, int64_t i0, int64_t mc, int64_t k0, int64_t kc, int mr_size, S* dst) {
  for (int64_t p = 0; p * mr_size < mc; ++p) {
    S* panel = dst + p * kc * mr_size;
    for (int r = 0; r < mr_size; ++r) {
      int64_t row = p * mr_size + r;
      if (row >= mc) {
        for (int64_t k = 0; k < kc; ++k) panel[k * mr_size + r] = S(0);
        continue;
      }
      const T* src = a.data + (i0 + row) * a.rs + k0 * a.cs;
      for (int64_t k = 0; k < kc; ++k) panel[k * mr_size + r] = load_compute(src, k * a.cs);
    }
  }
}

// B k [k0, k0+kc) × columns [j0, j0+nc) into NR-wide panels [k][NR], zero-padded.
template <typename T, typename S>
void pack_b_panel(const Operand<T>& b, int64_t k0, int64_t kc, int64_t j0, int64_t nc, int nr_size, int64_t q, S* dst) {
  S* panel = dst + q * kc * nr_size;
  int64_t jq = q * nr_size;
  int64_t width = std::min<int64_t>(nr_size, nc - jq);
  if (b.cs == 1) {
    for (int64_t k = 0; k < kc; ++k) {
      const T* src = b.data + (k0 + k) * b.rs + j0 + jq;
      S* row = panel + k * nr_size;
      for (int64_t j = 0; j < width; ++j) row[j] = load_compute(src, j);
      for (int64_t j = width; j < nr_size; ++j) row[j] = S(0);
    }
  } else {
    for (int64_t j = 0; j < nr_size; ++j) {
      if (j >= width) {
        for (int64_t k = 0; k < kc; ++k) panel[k * nr_size + j] = S(0);
        continue;
      }
      const T* src = b.data + k0 * b.rs + (j0 + jq + j) * b.cs;
      for (int64_t k = 0; k < kc; ++k) panel[k * nr_size + j] = load_compute(src, k * b.rs);
    }
  }
}

// C [M,N] (ldc = N) = A·B (C += A·B with `accumulate`) for one matrix with
// our kernel; `parallel` spreads it over the thread pool (else it runs on the
// calling thread).
template <typename T, typename S>
void gemm_builtin(const Operand<T>& a, const Operand<T>& b, S* c, int64_t M, int64_t N, int64_t K, bool parallel,
                  bool accumulate) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (!accumulate) std::fill(c, c + M * N, S(0));
    return;
  }
  const GemmIsa<S>& isa = isa_for(static_cast<S*>(nullptr));
  const int MR = isa.mr, NR = isa.nr;
  const int64_t threads = parallel ? thread_pool_size() : 1;
  std::vector<S> bpack;
  for (int64_t jc = 0; jc < N; jc += kNC) {
    const int64_t nc = std::min(kNC, N - jc);
    const int64_t panels = (nc + NR - 1) / NR;
    for (int64_t pc = 0; pc < K; pc += kKC) {
      const int64_t kc = std::min(kKC, K - pc);
      bpack.resize(static_cast<size_t>(panels * kc * NR));
      S* bp = bpack.data();
      auto pack_panels = [&](int64_t begin, int64_t end) {
        for (int64_t q = begin; q < end; ++q) pack_b_panel(b, pc, kc, jc, nc, NR, q, bp);
      };
      if (parallel)
        parallel_for(panels, 4, pack_panels);
      else
        pack_panels(0, panels);

      const int64_t iblocks = (M + kMC - 1) / kMC;
      int64_t groups = std::min<int64_t>(panels, std::max<int64_t>(1, (4 * threads + iblocks - 1) / iblocks));
      const int64_t per_group = (panels + groups - 1) / groups;
      groups = (panels + per_group - 1) / per_group;
      auto run_tasks = [&](int64_t begin, int64_t end) {
        std::vector<S> apack(static_cast<size_t>(((kMC + MR - 1) / MR) * MR * kc));
        int64_t packed_block = -1;
        for (int64_t t = begin; t < end; ++t) {
          int64_t ib = t / groups, g = t % groups;
          int64_t i0 = ib * kMC, mc = std::min(kMC, M - i0);
          if (ib != packed_block) {
            pack_a(a, i0, mc, pc, kc, MR, apack.data());
            packed_block = ib;
          }
          GemmBlock<S> blk;
          blk.apack = apack.data();
          blk.mc = mc;
          blk.bpack = bp;
          blk.panel_begin = g * per_group;
          blk.panel_end = std::min(panels, blk.panel_begin + per_group);
          blk.nc = nc;
          blk.kc = kc;
          blk.c = c + i0 * N + jc;
          blk.ldc = N;
          blk.accumulate = accumulate || pc > 0;
          isa.block(blk);
        }
      };
      if (parallel)
        parallel_for(iblocks * groups, 1, run_tasks);
      else
        run_tasks(0, iblocks * groups);
    }
  }
}

template <typename T>
Operand<T> operand_a(const MatmulParams& p, int64_t offset) {
  const T* data = static_cast<const T*>(p.a) + offset;
  return p.trans_a ? Operand<T>{data, 1, p.M} : Operand<T>{data, p.K, 1};
}

template <typename T>
Operand<T> operand_b(const MatmulParams& p, int64_t offset) {
  const T* data = static_cast<const T*>(p.b) + offset;
  return p.trans_b ? Operand<T>{data, 1, p.K} : Operand<T>{data, p.N, 1};
}

// One output matrix with our kernel, rounding into T when T is not S.
template <typename T>
void matrix_builtin(const MatmulParams& p, int64_t i, bool parallel) {
  using S = compute_t<T>;
  Operand<T> a = operand_a<T>(p, layout_offset(p.batch_layout, 0, i));
  Operand<T> b = operand_b<T>(p, layout_offset(p.batch_layout, 1, i));
  if (std::is_same_v<T, S> || p.out_compute) {
    S* out = static_cast<S*>(p.out) + i * p.M * p.N;
    gemm_builtin<T, S>(a, b, out, p.M, p.N, p.K, parallel, p.accumulate);
  } else {
    T* out = static_cast<T*>(p.out) + i * p.M * p.N;
    std::vector<S> c(static_cast<size_t>(p.M * p.N));
    if (p.accumulate) {
      for (int64_t e = 0; e < p.M * p.N; ++e) c[e] = load_compute(out, e);
    }
    gemm_builtin<T, S>(a, b, c.data(), p.M, p.N, p.K, parallel, p.accumulate);
    for (int64_t e = 0; e < p.M * p.N; ++e) store_compute(out, e, c[e]);
  }
}

template <typename T>
void to_compute(const T* src, int64_t n, compute_t<T>* dst) {
  for (int64_t e = 0; e < n; ++e) dst[e] = load_compute(src, e);
}

// One output matrix through OpenBLAS (row-major cblas; half types converted
// to float32 first and rounded once at the end).
template <typename T>
void matrix_openblas(const blas::OpenBlas& lib, const MatmulParams& p, int64_t i) {
  const T* a = static_cast<const T*>(p.a) + layout_offset(p.batch_layout, 0, i);
  const T* b = static_cast<const T*>(p.b) + layout_offset(p.batch_layout, 1, i);
  const int m = static_cast<int>(p.M), n = static_cast<int>(p.N), k = static_cast<int>(p.K);
  const int ta = p.trans_a ? blas::kCblasTrans : blas::kCblasNoTrans;
  const int tb = p.trans_b ? blas::kCblasTrans : blas::kCblasNoTrans;
  const int lda = p.trans_a ? m : k, ldb = p.trans_b ? k : n;
  const int64_t offset = i * p.M * p.N;
  if constexpr (std::is_same_v<T, double>) {
    double* out = static_cast<double*>(p.out) + offset;
    lib.dgemm(blas::kCblasRowMajor, ta, tb, m, n, k, 1.0, a, lda, b, ldb, p.accumulate ? 1.0 : 0.0, out, n);
  } else if constexpr (std::is_same_v<T, float>) {
    float* out = static_cast<float*>(p.out) + offset;
    lib.sgemm(blas::kCblasRowMajor, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, p.accumulate ? 1.0f : 0.0f, out, n);
  } else {
    std::vector<float> af(static_cast<size_t>(p.M * p.K)), bf(static_cast<size_t>(p.K * p.N)), cf;
    parallel_for(p.M * p.K, 1 << 15, [&](int64_t s, int64_t e) { to_compute(a + s, e - s, af.data() + s); });
    parallel_for(p.K * p.N, 1 << 15, [&](int64_t s, int64_t e) { to_compute(b + s, e - s, bf.data() + s); });
    T* out = static_cast<T*>(p.out) + offset;
    float* c = p.out_compute ? static_cast<float*>(p.out) + offset : nullptr;
    if (!c) {
      cf.resize(static_cast<size_t>(p.M * p.N));
      c = cf.data();
      if (p.accumulate) {
        parallel_for(p.M * p.N, 1 << 15, [&](int64_t s, int64_t e) { to_compute(out + s, e - s, c + s); });
      }
    }
    lib.sgemm(blas::kCblasRowMajor, ta, tb, m, n, k, 1.0f, af.data(), lda, bf.data(), ldb, p.accumulate ? 1.0f : 0.0f,
              c, n);
    if (!p.out_compute) {
      parallel_for(p.M * p.N, 1 << 15, [&](int64_t s, int64_t e) {
        for (int64_t x = s; x < e; ++x) store_compute(out, x, c[x]);
      });
    }
  }
}

// Below this many multiply-adds per matrix, a batch is spread over threads
// one matrix per task with our kernel (also when OpenBLAS is loaded: many
// tiny calls into a threaded BLAS cost more than they compute).
constexpr int64_t kSmallMatrix = 64 * 64 * 64;

template <typename T>
void matmul_typed(const MatmulParams& p, GemmKernel kernel) {
  if (p.batch == 0 || p.M == 0 || p.N == 0) return;
  if (!p.accumulate && !p.out_compute && gemv_cpu(p)) return;  // a few rows against a transposed weight: decoding
  const int64_t work = p.M * p.N * std::max<int64_t>(p.K, 1);
  if (p.batch > 1 && work <= kSmallMatrix) {
    parallel_for(p.batch, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) matrix_builtin<T>(p, i, false);
    });
    return;
  }
  const blas::OpenBlas* lib = kernel == GemmKernel::Library ? blas::openblas() : nullptr;
  constexpr int64_t kIntMax = std::numeric_limits<int>::max();
  if (lib && (p.M > kIntMax || p.N > kIntMax || p.K > kIntMax)) lib = nullptr;
  for (int64_t i = 0; i < p.batch; ++i) {
    if (lib)
      matrix_openblas<T>(*lib, p, i);
    else
      matrix_builtin<T>(p, i, true);
  }
}

}  // namespace

void matmul_cpu(const MatmulParams& p, GemmKernel kernel) {
  dispatch_float(p.dtype, [&](auto tag) { matmul_typed<typename decltype(tag)::type>(p, kernel); });
}

const char* gemm_cpu_isa() { return isa_for(static_cast<float*>(nullptr)).name; }

}  // namespace lmk::kernels
