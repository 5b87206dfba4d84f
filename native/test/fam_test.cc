// TransformerFAM attention (ops/fam.h) without Node: the CPU kernels against
// a float64 reference written here from docs/kernels.md's table (an explicit key
// list per query, plain loops), finite-difference gradient checks in float64,
// the extreme inputs, grouped heads, 16-bit storage, bad arguments, and — when
// a GPU is present — the tiled and the simple CUDA kernels against the CPU.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <future>
#include <random>
#include <string>
#include <vector>

#include "kernels/test_hooks.h"
#include "math/fam_mask.h"
#include "math/half.h"
#include "ops/fam.h"
#include "ops/tensor_ops.h"
#include "runtime/device.h"
#include "runtime/stream.h"
#include "test_harness.h"

using namespace lmk;

static const Device kCpu{DeviceKind::CPU, 0};
static const Device kCuda{DeviceKind::CUDA, 0};

// ---- host helpers -------------------------------------------------------------

template <typename T>
static std::vector<T> read(const Tensor& t) {
  std::vector<uint8_t> bytes = ops::read_to_host_blocking(t);
  std::vector<T> values(bytes.size() / sizeof(T));
  if (!bytes.empty()) std::memcpy(values.data(), bytes.data(), bytes.size());
  return values;
}

// Values as doubles whatever the dtype (float64 stays exact).
static std::vector<double> read_doubles(const Tensor& t) {
  if (t.dtype == DType::Float64) return read<double>(t);
  auto f = read<float>(t);
  return std::vector<double>(f.begin(), f.end());
}

static Tensor make(const std::vector<double>& values, const Shape& shape, DType dtype, const Device& device = kCpu) {
  return ops::from_host(values.data(), DType::Float64, static_cast<int64_t>(values.size()), shape, dtype, device);
}

// Rounds values to what `dtype` stores, so the reference sees the kernel's inputs.
static std::vector<double> rounded(std::vector<double> v, DType dtype) {
  for (double& x : v) {
    if (dtype == DType::Float32) x = static_cast<float>(x);
    if (dtype == DType::BFloat16) x = bf16_to_float(double_to_bf16(x));
    if (dtype == DType::Float16) x = f16_to_float(double_to_f16(x));
  }
  return v;
}

static std::vector<double> random_values(size_t n, uint32_t seed, double scale = 1.0) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> v(n);
  for (double& x : v) x = scale * normal(gen);
  return v;
}

static int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

static bool all_finite(const std::vector<double>& v) {
  for (double x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

// ---- the float64 reference, from docs/kernels.md's table ----------------------------

struct Problem {
  int64_t B = 1, H = 2, Hkv = 2, T = 10, D = 16, L = 4, m = 1, F = 3;
  bool fam = true;
  double scale = 0;  // 0: 1/sqrt(D)
  std::vector<double> q, k, v, fk, fv, gout;
  int64_t NB() const { return (T + L - 1) / L; }
  Shape q_shape() const { return {B, H, T, D}; }
  Shape k_shape() const { return {B, Hkv, T, D}; }
  Shape fam_shape() const { return {B, Hkv, NB(), F, D}; }
  double s() const { return scale != 0 ? scale : 1.0 / std::sqrt(static_cast<double>(D)); }
};

static Problem random_problem(Problem p, uint32_t seed, double magnitude = 1.0) {
  p.q = random_values(numel(p.q_shape()), seed, magnitude);
  p.k = random_values(numel(p.k_shape()), seed + 1, magnitude);
  p.v = random_values(numel(p.k_shape()), seed + 2);
  if (p.fam) {
    p.fk = random_values(numel(p.fam_shape()), seed + 3, magnitude);
    p.fv = random_values(numel(p.fam_shape()), seed + 4);
  }
  p.gout = random_values(numel(p.q_shape()), seed + 5);
  return p;
}

static Problem rounded_problem(Problem p, DType dtype) {
  for (auto* v : {&p.q, &p.k, &p.v, &p.fk, &p.fv, &p.gout}) *v = rounded(*v, dtype);
  return p;
}

// A key a query reads: a row of k/v or of famK/famV.
struct KeyRef {
  const double* k;
  const double* v;
  double* gk;
  double* gv;
};

struct Reference {
  std::vector<double> out, lse, gq, gk, gv, gfk, gfv;
};

// Explicit key lists, written straight from the table: memory segment
// max(0,(τ-m)L) .. τL-1, the FAM famK[τ] (all F), the block τL .. t.
static std::vector<KeyRef> block_keys(const Problem& p, Reference& r, int64_t b, int64_t h, int64_t t) {
  int64_t kvh = h / (p.H / p.Hkv);
  int64_t tau = t / p.L;
  std::vector<KeyRef> keys;
  auto seq = [&](int64_t j) {
    int64_t off = ((b * p.Hkv + kvh) * p.T + j) * p.D;
    keys.push_back({&p.k[off], &p.v[off], &r.gk[off], &r.gv[off]});
  };
  for (int64_t j = std::max<int64_t>(0, (tau - p.m) * p.L); j < tau * p.L; ++j) seq(j);
  if (p.fam)
    for (int64_t f = 0; f < p.F; ++f) {
      int64_t off = (((b * p.Hkv + kvh) * p.NB() + tau) * p.F + f) * p.D;
      keys.push_back({&p.fk[off], &p.fv[off], &r.gfk[off], &r.gfv[off]});
    }
  for (int64_t j = tau * p.L; j <= t; ++j) seq(j);
  return keys;
}

// One query row's attention over `keys`, and its gradient contributions.
static void attend(const double* q, const double* gout, const std::vector<KeyRef>& keys, int64_t D, double scale,
                   double* out, double* lse, double* gq) {
  std::vector<double> s(keys.size());
  double mx = -INFINITY;
  for (size_t j = 0; j < keys.size(); ++j) {
    double dot = 0;
    for (int64_t d = 0; d < D; ++d) dot += q[d] * keys[j].k[d];
    s[j] = scale * dot;
    mx = std::max(mx, s[j]);
  }
  double sum = 0;
  for (double x : s) sum += std::exp(x - mx);
  *lse = mx + std::log(sum);
  std::vector<double> pr(keys.size());
  for (size_t j = 0; j < keys.size(); ++j) pr[j] = std::exp(s[j] - *lse);
  for (int64_t d = 0; d < D; ++d) {
    double o = 0;
    for (size_t j = 0; j < keys.size(); ++j) o += pr[j] * keys[j].v[d];
    out[d] = o;
  }
  if (!gout) return;
  double delta = 0;
  for (int64_t d = 0; d < D; ++d) delta += gout[d] * out[d];
  for (size_t j = 0; j < keys.size(); ++j) {
    double dp = 0;
    for (int64_t d = 0; d < D; ++d) dp += gout[d] * keys[j].v[d];
    double ds = pr[j] * (dp - delta);
    for (int64_t d = 0; d < D; ++d) {
      gq[d] += scale * ds * keys[j].k[d];
      keys[j].gk[d] += scale * ds * q[d];
      keys[j].gv[d] += pr[j] * gout[d];
    }
  }
}

static Reference reference_block(const Problem& p) {
  Reference r;
  r.out.assign(p.q.size(), 0);
  r.lse.assign(p.B * p.H * p.T, 0);
  r.gq.assign(p.q.size(), 0);
  r.gk.assign(p.k.size(), 0);
  r.gv.assign(p.v.size(), 0);
  r.gfk.assign(p.fk.size(), 0);
  r.gfv.assign(p.fv.size(), 0);
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t h = 0; h < p.H; ++h)
      for (int64_t t = 0; t < p.T; ++t) {
        int64_t off = ((b * p.H + h) * p.T + t) * p.D;
        attend(&p.q[off], &p.gout[off], block_keys(p, r, b, h, t), p.D, p.s(), &r.out[off],
               &r.lse[(b * p.H + h) * p.T + t], &r.gq[off]);
      }
  return r;
}

// ---- running the op ------------------------------------------------------------

struct Run {
  std::vector<double> out, lse, gq, gk, gv, gfk, gfv;
};

static ops::FamBlockAttentionArgs block_args(const Problem& p, DType dtype, const Device& device) {
  ops::FamBlockAttentionArgs a;
  a.q = make(p.q, p.q_shape(), dtype, device);
  a.k = make(p.k, p.k_shape(), dtype, device);
  a.v = make(p.v, p.k_shape(), dtype, device);
  if (p.fam) {
    a.fam_k = make(p.fk, p.fam_shape(), dtype, device);
    a.fam_v = make(p.fv, p.fam_shape(), dtype, device);
  }
  a.block_size = p.L;
  a.memory_blocks = p.m;
  if (p.scale != 0) a.scale = p.scale;
  return a;
}

// The CUDA kernels a run uses: the tiled ones, or the simple reference ones.
static kernels::KernelVariant fam_variant(bool reference_kernel) {
  return reference_kernel ? kernels::KernelVariant::Reference : kernels::KernelVariant::Default;
}

static Run run_block(const Problem& p, DType dtype, const Device& device = kCpu, bool backward = true,
                     bool reference_kernel = false) {
  kernels::ScopedKernelVariant variant(kernels::KernelFamily::Fam, fam_variant(reference_kernel));
  ops::FamBlockAttentionArgs a = block_args(p, dtype, device);
  ops::FamAttentionResult f = ops::fam_block_attention(a);
  Run r;
  r.out = read_doubles(f.out);
  r.lse = read_doubles(f.lse);
  if (!backward) return r;
  ops::FamBlockAttentionBackwardArgs ba;
  static_cast<ops::FamBlockAttentionArgs&>(ba) = a;
  ba.out = f.out;
  ba.lse = f.lse;
  ba.grad_out = make(p.gout, p.q_shape(), dtype, device);
  ops::FamBlockAttentionGrads g = ops::fam_block_attention_backward(ba);
  r.gq = read_doubles(g.gq);
  r.gk = read_doubles(g.gk);
  r.gv = read_doubles(g.gv);
  CHECK_EQ(g.g_fam_k.has_value(), p.fam);
  if (g.g_fam_k) {
    r.gfk = read_doubles(*g.g_fam_k);
    r.gfv = read_doubles(*g.g_fam_v);
  }
  return r;
}

static std::string fmt(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", x);
  return buf;
}

static double rel(const std::vector<double>& out, const std::vector<double>& ref) {
  CHECK_EQ(out.size(), ref.size());
  if (out.size() != ref.size()) return INFINITY;
  return lmk_test::relative_error(out, ref);
}

static double norm(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return std::sqrt(s);
}

// ‖out − ref‖ / max(‖ref‖, floor).
static double rel_floor(const std::vector<double>& out, const std::vector<double>& ref, double floor) {
  double e = rel(out, ref);
  double n = norm(ref);
  return n >= floor || n == 0 ? e : e * n / floor;
}

// Checks every result of a run against the reference within `fwd` / `grad`.
// Saturated softmax (`saturated`): the true dk of a key that takes (almost)
// all the weight is p·(dp − Δ) with dp − Δ far below the rounding of dp, so dk
// and dFamK are measured against the size of dq (same structure: scale·ds
// times a vector of norm 100) rather than against their own tiny norm.
static void expect_close(const Run& r, const Reference& ref, double fwd, double grad, const char* what,
                         bool saturated = false) {
  double key_floor = saturated ? norm(ref.gq) : 0;
  double e_out = rel(r.out, ref.out), e_lse = rel(r.lse, ref.lse);
  double e_gq = rel(r.gq, ref.gq), e_gk = rel_floor(r.gk, ref.gk, key_floor), e_gv = rel(r.gv, ref.gv);
  double e_gfk = r.gfk.empty() ? 0 : rel_floor(r.gfk, ref.gfk, key_floor);
  double e_gfv = r.gfv.empty() ? 0 : rel(r.gfv, ref.gfv);
  bool ok =
      e_out <= fwd && e_lse <= fwd && e_gq <= grad && e_gk <= grad && e_gv <= grad && e_gfk <= grad && e_gfv <= grad;
  for (auto* v : {&r.out, &r.lse, &r.gq, &r.gk, &r.gv, &r.gfk, &r.gfv}) ok = ok && all_finite(*v);
  if (!ok) {
    lmk_test::fail(__FILE__, __LINE__,
                   std::string(what) + ": out " + fmt(e_out) + " lse " + fmt(e_lse) + " gq " + fmt(e_gq) + " gk " +
                       fmt(e_gk) + " gv " + fmt(e_gv) + " gFamK " + fmt(e_gfk) + " gFamV " + fmt(e_gfv));
  }
}

// ---- tests -----------------------------------------------------------------------

TEST(mask_matches_the_table) {
  // Every (query, key) pair: visible iff the table's key list holds it.
  for (int64_t L : {1, 3, 4}) {
    for (int64_t m : {0, 1, 2, 7}) {
      FamMask mask{L, m, 11, true};
      for (int64_t t = 0; t < 11; ++t) {
        int64_t tau = t / L;
        for (int64_t j = 0; j < 11; ++j) {
          bool memory = j >= std::max<int64_t>(0, (tau - m) * L) && j < tau * L;
          bool block = j >= tau * L && j <= t;
          CHECK_EQ(fam_key_visible(mask, t, j), memory || block);
        }
      }
      // fam_queries_seeing covers every query that sees a key of the range.
      for (int64_t k0 = 0; k0 < 11; ++k0)
        for (int64_t k1 = k0 + 1; k1 <= 11; ++k1) {
          int64_t qb, qe;
          fam_queries_seeing(mask, 11, k0, k1, &qb, &qe);
          for (int64_t t = 0; t < 11; ++t)
            for (int64_t j = k0; j < k1; ++j)
              if (fam_key_visible(mask, t, j)) CHECK(t >= qb && t < qe);
        }
    }
  }
  FamMask huge{4, int64_t(1) << 62, 16, true};
  CHECK_EQ(fam_window_begin(huge, 3), int64_t(0));
  int64_t qb, qe;
  fam_queries_seeing(huge, 16, 0, 1, &qb, &qe);
  CHECK_EQ(qe, int64_t(16));
}

TEST(forward_and_backward_match_the_float64_reference) {
  Problem base;
  for (int64_t T : {1, 4, 10, 37}) {
    for (int64_t m : {0, 1, 2, 9}) {
      for (int64_t L : {1, 4, 5}) {
        Problem p = base;
        p.T = T;
        p.m = m;
        p.L = L;
        p = random_problem(p, static_cast<uint32_t>(T * 100 + m * 10 + L));
        Reference ref = reference_block(p);
        expect_close(
            run_block(p, DType::Float64), ref, 1e-12, 1e-12,
            ("float64 T=" + std::to_string(T) + " m=" + std::to_string(m) + " L=" + std::to_string(L)).c_str());
      }
    }
  }
}

TEST(float32_within_the_bar_across_tile_edges) {
  // Sizes around the CPU tiles (32 queries, 64 keys) and several head dims.
  struct Case {
    int64_t T, L, m, F, D;
  };
  for (Case c :
       {Case{200, 70, 1, 3, 64}, Case{130, 64, 2, 65, 16}, Case{97, 33, 0, 1, 128}, Case{75, 128, 1, 64, 40}}) {
    Problem p;
    p.T = c.T;
    p.L = c.L;
    p.m = c.m;
    p.F = c.F;
    p.D = c.D;
    p = rounded_problem(random_problem(p, static_cast<uint32_t>(c.T + c.D)), DType::Float32);
    Reference ref = reference_block(p);
    expect_close(run_block(p, DType::Float32), ref, 1e-5, 1e-4, ("float32 D=" + std::to_string(c.D)).c_str());
  }
}

TEST(plain_bswa_without_fam) {
  Problem p;
  p.fam = false;
  p.T = 23;
  p.L = 5;
  p.m = 2;
  p = random_problem(p, 7);
  expect_close(run_block(p, DType::Float64), reference_block(p), 1e-12, 1e-12, "bswa");
}

TEST(grouped_heads_sum_over_their_query_heads) {
  for (int64_t Hkv : {1, 2}) {
    Problem p;
    p.B = 2;
    p.H = 4;
    p.Hkv = Hkv;
    p.T = 19;
    p.L = 6;
    p.m = 1;
    p = random_problem(p, static_cast<uint32_t>(40 + Hkv));
    expect_close(run_block(p, DType::Float64), reference_block(p), 1e-12, 1e-12, "grouped heads");
  }
}

TEST(extreme_inputs_stay_finite_and_accurate) {
  // q, k of norm 100: the softmax saturates.
  Problem p;
  p.T = 21;
  p.L = 4;
  p.m = 2;
  p.D = 64;
  p = random_problem(p, 99);
  auto normalise = [&](std::vector<double>& x) {
    for (size_t r = 0; r < x.size(); r += p.D) {
      double n = 0;
      for (int64_t d = 0; d < p.D; ++d) n += x[r + d] * x[r + d];
      for (int64_t d = 0; d < p.D; ++d) x[r + d] *= 100.0 / std::sqrt(n);
    }
  };
  normalise(p.q);
  normalise(p.k);
  normalise(p.fk);
  Reference ref = reference_block(p);
  expect_close(run_block(p, DType::Float64), ref, 1e-12, 1e-12, "saturated float64", true);
  Problem p32 = rounded_problem(p, DType::Float32);
  Reference ref32 = reference_block(p32);
  Run r32 = run_block(p32, DType::Float32);
  expect_close(r32, ref32, 1e-5, 1e-4, "saturated float32", true);
  // T = 1, F = 1, m larger than the blocks available, D = 16 and 128.
  for (int64_t D : {16, 128}) {
    Problem q;
    q.T = 1;
    q.F = 1;
    q.m = 50;
    q.D = D;
    q = random_problem(q, static_cast<uint32_t>(D));
    expect_close(run_block(q, DType::Float64), reference_block(q), 1e-12, 1e-12, "T=1 F=1");
  }
}

TEST(sixteen_bit_storage_within_1e_2) {
  for (DType dtype : {DType::BFloat16, DType::Float16}) {
    Problem p;
    p.T = 45;
    p.L = 8;
    p.m = 2;
    p.F = 5;
    p.D = 64;
    p = rounded_problem(random_problem(p, 5), dtype);
    Reference ref = reference_block(p);
    expect_close(run_block(p, dtype), ref, 1e-2, 1e-2, dtype_name(dtype));
  }
}

// d/dx Σ gOut∘out by central differences in float64, at a few elements of each input.
TEST(finite_differences_match_the_block_backward) {
  Problem p;
  p.T = 11;
  p.L = 4;
  p.m = 1;
  p.F = 2;
  p.D = 8;
  p.H = 2;
  p.Hkv = 1;
  p = random_problem(p, 3);
  Run r = run_block(p, DType::Float64);
  auto loss = [&](const Problem& x) {
    Run f = run_block(x, DType::Float64, kCpu, false);
    double s = 0;
    for (size_t i = 0; i < f.out.size(); ++i) s += f.out[i] * x.gout[i];
    return s;
  };
  const double eps = 1e-6;
  struct Input {
    std::vector<double> Problem::*field;
    const std::vector<double>* grad;
    const char* name;
  };
  for (Input in : {Input{&Problem::q, &r.gq, "q"}, Input{&Problem::k, &r.gk, "k"}, Input{&Problem::v, &r.gv, "v"},
                   Input{&Problem::fk, &r.gfk, "famK"}, Input{&Problem::fv, &r.gfv, "famV"}}) {
    size_t n = (p.*(in.field)).size();
    for (size_t i = 0; i < n; i += std::max<size_t>(1, n / 23)) {
      Problem plus = p, minus = p;
      (plus.*(in.field))[i] += eps;
      (minus.*(in.field))[i] -= eps;
      double fd = (loss(plus) - loss(minus)) / (2 * eps);
      double an = (*in.grad)[i];
      if (std::fabs(fd - an) > 1e-6 * std::max(1.0, std::fabs(an))) {
        lmk_test::fail(__FILE__, __LINE__,
                       std::string(in.name) + "[" + std::to_string(i) + "]: fd " + std::to_string(fd) + " vs " +
                           std::to_string(an));
      }
    }
  }
}

// ---- memoryAttention ---------------------------------------------------------------

struct MemoryProblem {
  int64_t B = 2, H = 2, Hkv = 1, F = 3, Lb = 5, D = 8;
  std::vector<double> fq, fk, fv, bk, bv, gout;
};

static MemoryProblem random_memory(MemoryProblem p, uint32_t seed) {
  p.fq = random_values(p.B * p.H * p.F * p.D, seed);
  p.fk = random_values(p.B * p.Hkv * p.F * p.D, seed + 1);
  p.fv = random_values(p.B * p.Hkv * p.F * p.D, seed + 2);
  p.bk = random_values(p.B * p.Hkv * p.Lb * p.D, seed + 3);
  p.bv = random_values(p.B * p.Hkv * p.Lb * p.D, seed + 4);
  p.gout = random_values(p.B * p.H * p.F * p.D, seed + 5);
  return p;
}

static std::vector<std::vector<double>> run_memory(const MemoryProblem& p, DType dtype, const Device& device,
                                                   bool backward, bool reference_kernel = false) {
  kernels::ScopedKernelVariant variant(kernels::KernelFamily::Fam, fam_variant(reference_kernel));
  ops::FamMemoryAttentionBackwardArgs a;
  a.fam_q = make(p.fq, {p.B, p.H, p.F, p.D}, dtype, device);
  a.fam_k = make(p.fk, {p.B, p.Hkv, p.F, p.D}, dtype, device);
  a.fam_v = make(p.fv, {p.B, p.Hkv, p.F, p.D}, dtype, device);
  a.block_k = make(p.bk, {p.B, p.Hkv, p.Lb, p.D}, dtype, device);
  a.block_v = make(p.bv, {p.B, p.Hkv, p.Lb, p.D}, dtype, device);
  ops::FamAttentionResult f = ops::fam_memory_attention(a);
  std::vector<std::vector<double>> r{read_doubles(f.out), read_doubles(f.lse)};
  if (!backward) return r;
  a.out = f.out;
  a.lse = f.lse;
  a.grad_out = make(p.gout, {p.B, p.H, p.F, p.D}, dtype, device);
  ops::FamMemoryAttentionGrads g = ops::fam_memory_attention_backward(a);
  for (const Tensor* t : {&g.g_fam_q, &g.g_fam_k, &g.g_fam_v, &g.g_block_k, &g.g_block_v})
    r.push_back(read_doubles(*t));
  return r;
}

static std::vector<std::vector<double>> reference_memory(const MemoryProblem& p) {
  std::vector<double> out(p.fq.size()), lse(p.B * p.H * p.F), gq(p.fq.size(), 0), gfk(p.fk.size(), 0),
      gfv(p.fv.size(), 0), gbk(p.bk.size(), 0), gbv(p.bv.size(), 0);
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t h = 0; h < p.H; ++h)
      for (int64_t i = 0; i < p.F; ++i) {
        int64_t kvh = h / (p.H / p.Hkv);
        std::vector<KeyRef> keys;
        for (int64_t f = 0; f < p.F; ++f) {
          int64_t off = ((b * p.Hkv + kvh) * p.F + f) * p.D;
          keys.push_back({&p.fk[off], &p.fv[off], &gfk[off], &gfv[off]});
        }
        for (int64_t j = 0; j < p.Lb; ++j) {
          int64_t off = ((b * p.Hkv + kvh) * p.Lb + j) * p.D;
          keys.push_back({&p.bk[off], &p.bv[off], &gbk[off], &gbv[off]});
        }
        int64_t off = ((b * p.H + h) * p.F + i) * p.D;
        attend(&p.fq[off], &p.gout[off], keys, p.D, 1.0 / std::sqrt(double(p.D)), &out[off],
               &lse[(b * p.H + h) * p.F + i], &gq[off]);
      }
  return {out, lse, gq, gfk, gfv, gbk, gbv};
}

TEST(memory_attention_matches_the_reference) {
  for (int64_t Lb : {0, 1, 5, 70}) {
    for (int64_t F : {1, 3, 40}) {
      MemoryProblem p;
      p.Lb = Lb;
      p.F = F;
      p = random_memory(p, static_cast<uint32_t>(Lb * 7 + F));
      auto got = run_memory(p, DType::Float64, kCpu, true);
      auto want = reference_memory(p);
      for (size_t i = 0; i < want.size(); ++i) {
        double e = rel(got[i], want[i]);
        if (!(e <= 1e-12))
          lmk_test::fail(__FILE__, __LINE__, "memory result " + std::to_string(i) + ": " + std::to_string(e));
      }
    }
  }
}

TEST(finite_differences_match_the_memory_backward) {
  MemoryProblem p;
  p.H = 2;
  p.Hkv = 2;
  p = random_memory(p, 11);
  auto grads = run_memory(p, DType::Float64, kCpu, true);
  auto loss = [&](const MemoryProblem& x) {
    auto f = run_memory(x, DType::Float64, kCpu, false);
    double s = 0;
    for (size_t i = 0; i < f[0].size(); ++i) s += f[0][i] * x.gout[i];
    return s;
  };
  using Field = std::vector<double> MemoryProblem::*;
  Field fields[] = {&MemoryProblem::fq, &MemoryProblem::fk, &MemoryProblem::fv, &MemoryProblem::bk, &MemoryProblem::bv};
  for (int f = 0; f < 5; ++f) {
    size_t n = (p.*fields[f]).size();
    for (size_t i = 0; i < n; i += std::max<size_t>(1, n / 17)) {
      MemoryProblem plus = p, minus = p;
      (plus.*fields[f])[i] += 1e-6;
      (minus.*fields[f])[i] -= 1e-6;
      double fd = (loss(plus) - loss(minus)) / 2e-6;
      double an = grads[2 + f][i];
      if (std::fabs(fd - an) > 1e-6 * std::max(1.0, std::fabs(an)))
        lmk_test::fail(__FILE__, __LINE__,
                       "memory input " + std::to_string(f) + "[" + std::to_string(i) + "]: fd " + std::to_string(fd) +
                           " vs " + std::to_string(an));
    }
  }
}

// ---- bad arguments ---------------------------------------------------------------

TEST(bad_arguments_are_named_errors) {
  Problem p = random_problem(Problem{}, 1);
  auto good = [&] { return block_args(p, DType::Float32, kCpu); };
  {
    auto a = good();
    a.k = make(std::vector<double>(2 * 10 * 8, 0), {1, 2, 10, 8}, DType::Float32);
    CHECK_THROWS_KIND(ops::fam_block_attention(a), ErrorKind::Range,
                      "fam.blockAttention: k must have shape [B,Hkv,T,D] = [1,Hkv,10,16]");
  }
  {
    auto a = good();
    a.v = make(std::vector<double>(10 * 16, 0), {1, 1, 10, 16}, DType::Float32);
    CHECK_THROWS_KIND(ops::fam_block_attention(a), ErrorKind::Range,
                      "v must have shape [B,Hkv,T,D] = [1,2,10,16] like k");
  }
  {
    Problem g = p;
    g.H = 3;
    g.Hkv = 2;
    g = random_problem(g, 2);
    auto a = block_args(g, DType::Float32, kCpu);
    CHECK_THROWS_KIND(ops::fam_block_attention(a), ErrorKind::Range,
                      "H=3 query heads of q must be a multiple of the Hkv=2");
  }
  {
    auto a = good();
    a.fam_v.reset();
    CHECK_THROWS_KIND(ops::fam_block_attention(a), ErrorKind::Type,
                      "fam.blockAttention: famV is required when famK is given");
  }
  {
    auto a = good();
    a.fam_k = make(std::vector<double>(2 * 2 * 3 * 16, 0), {1, 2, 2, 3, 16}, DType::Float32);
    CHECK_THROWS_KIND(ops::fam_block_attention(a), ErrorKind::Range,
                      "famK must have shape [B,Hkv,NB,F,D] = [1,2,3,F,16]");
  }
  {
    auto a = good();
    a.block_size = 0;
    CHECK_THROWS_KIND(ops::fam_block_attention(a), ErrorKind::Range, "blockSize must be an integer >= 1, got 0");
    a.block_size = 4;
    a.memory_blocks = -1;
    CHECK_THROWS_KIND(ops::fam_block_attention(a), ErrorKind::Range, "memoryBlocks must be an integer >= 0, got -1");
    a.memory_blocks = 1;
    a.scale = NAN;
    CHECK_THROWS_KIND(ops::fam_block_attention(a), ErrorKind::Range, "scale must be a finite number");
  }
  {
    auto a = good();
    a.k = make(p.k, p.k_shape(), DType::BFloat16);
    CHECK_THROWS_KIND(ops::fam_block_attention(a), ErrorKind::Type, "k must have dtype float32 like q, got bfloat16");
    a = good();
    a.q = ops::full(p.q_shape(), 1, DType::Int32, kCpu);
    CHECK_THROWS_KIND(ops::fam_block_attention(a), ErrorKind::Type,
                      "q must have dtype float32, bfloat16, float16 or float64");
    a = good();
    a.q = make(std::vector<double>(2 * 10 * 300, 0), {1, 2, 10, 300}, DType::Float32);
    CHECK_THROWS_KIND(ops::fam_block_attention(a), ErrorKind::Range, "head dim D (q.shape[3]) must be in [1, 256]");
  }
  {
    ops::FamBlockAttentionBackwardArgs b;
    static_cast<ops::FamBlockAttentionArgs&>(b) = good();
    auto f = ops::fam_block_attention(b);
    b.out = f.out;
    b.grad_out = f.out;
    b.lse = ops::empty({1, 2, 10}, DType::BFloat16, kCpu);
    CHECK_THROWS_KIND(ops::fam_block_attention_backward(b), ErrorKind::Type,
                      "fam.blockAttentionBackward: lse must have dtype float32");
    b.lse = ops::empty({1, 2, 9}, DType::Float32, kCpu);
    CHECK_THROWS_KIND(ops::fam_block_attention_backward(b), ErrorKind::Range, "lse must have shape [B,H,T] = [1,2,10]");
  }
  {
    MemoryProblem m = random_memory(MemoryProblem{}, 3);
    ops::FamMemoryAttentionArgs a;
    a.fam_q = make(m.fq, {m.B, m.H, m.F, m.D}, DType::Float32);
    a.fam_k = make(m.fk, {m.B, m.Hkv, m.F, m.D}, DType::Float32);
    a.fam_v = make(m.fv, {m.B, m.Hkv, m.F, m.D}, DType::Float32);
    a.block_k = make(m.bk, {m.B, m.Hkv, m.Lb, m.D}, DType::Float32);
    a.block_v = make(std::vector<double>(m.bv.size() - m.B * m.D), {m.B, m.Hkv, m.Lb - 1, m.D}, DType::Float32);
    CHECK_THROWS_KIND(ops::fam_memory_attention(a), ErrorKind::Range,
                      "fam.memoryAttention: blockV must have shape [B,Hkv,L',D] = [2,1,5,8] like blockK");
  }
}

// ---- CUDA against the CPU (only with a GPU) -------------------------------------------

TEST(cuda_kernels_match_the_cpu) {
  if (!cuda_info().available) {
    std::printf("  (skipped: CUDA not available: %s)\n", cuda_info().reason.c_str());
    return;
  }
  struct Case {
    int64_t B, H, Hkv, T, L, m, F, D;
    bool fam = true;
  };
  for (Case c : {Case{1, 2, 2, 37, 8, 1, 3, 16}, Case{2, 4, 2, 130, 64, 2, 64, 64}, Case{1, 4, 1, 200, 96, 1, 5, 128},
                 Case{1, 2, 1, 77, 16, 3, 7, 40}, Case{1, 2, 2, 300, 100, 0, 1, 256}, Case{1, 1, 1, 1, 4, 5, 1, 64},
                 Case{2, 2, 2, 50, 7, 2, 0, 64, false}}) {
    Problem p;
    p.B = c.B;
    p.H = c.H;
    p.Hkv = c.Hkv;
    p.T = c.T;
    p.L = c.L;
    p.m = c.m;
    p.F = c.F;
    p.D = c.D;
    p.fam = c.fam;
    for (DType dtype : {DType::Float32, DType::BFloat16}) {
      Problem r = rounded_problem(random_problem(p, static_cast<uint32_t>(c.T + c.D)), dtype);
      Reference ref = reference_block(r);
      double fwd = dtype == DType::Float32 ? 1e-5 : 1e-2, grad = dtype == DType::Float32 ? 1e-4 : 1e-2;
      std::string name = std::string(dtype_name(dtype)) + " T=" + std::to_string(c.T) + " D=" + std::to_string(c.D);
      expect_close(run_block(r, dtype, kCuda, true, false), ref, fwd, grad, ("cuda tiled " + name).c_str());
      expect_close(run_block(r, dtype, kCuda, true, true), ref, fwd, grad, ("cuda simple " + name).c_str());
    }
  }
  {
    // Saturated softmax (q, k of norm 100) on both CUDA paths.
    Problem p;
    p.T = 150;
    p.L = 64;
    p.m = 1;
    p.F = 5;
    p.D = 64;
    p = random_problem(p, 123, 100.0 / 8.0);  // rows of norm ≈ 100 for D = 64
    p = rounded_problem(p, DType::Float32);
    Reference ref = reference_block(p);
    expect_close(run_block(p, DType::Float32, kCuda, true, false), ref, 1e-5, 1e-4, "cuda tiled saturated", true);
    expect_close(run_block(p, DType::Float32, kCuda, true, true), ref, 1e-5, 1e-4, "cuda simple saturated", true);
  }
  for (int64_t Lb : {0, 5, 100}) {
    MemoryProblem p;
    p.Lb = Lb;
    p.F = 64;
    p.D = 64;
    p.H = 4;
    p.Hkv = 2;
    p = random_memory(p, static_cast<uint32_t>(Lb));
    auto want = run_memory(p, DType::Float64, kCpu, true);
    for (bool simple : {false, true}) {
      auto got = run_memory(p, DType::Float32, kCuda, true, simple);
      for (size_t i = 0; i < want.size(); ++i) {
        double e = rel(got[i], want[i]);
        if (!(e <= (i < 2 ? 1e-5 : 1e-4)))
          lmk_test::fail(__FILE__, __LINE__,
                         std::string(simple ? "simple" : "tiled") + " cuda memory result " + std::to_string(i) + ": " +
                             std::to_string(e));
      }
    }
  }
}

LMK_TEST_MAIN()
