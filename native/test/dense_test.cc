// Dense kernels without Node: each op against a float64 reference written here
// with plain loops, gradients against central differences in float64, both
// GEMM paths (OpenBLAS when it loads, and ours), determinism, bad inputs, and
// — when a GPU is present — every CUDA kernel (cuBLAS, our tiled GEMM and the
// reference GEMM) against the CPU backend.
#include <cmath>
#include <cstring>
#include <functional>
#include <future>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/elementwise/float_dispatch.h"
#include "kernels/matmul/matmul.h"
#include "kernels/test_hooks.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/matmul.h"
#include "ops/norm.h"
#include "ops/optim.h"
#include "ops/reduce.h"
#include "ops/rope.h"
#include "ops/shape.h"
#include "ops/tensor_ops.h"
#include "runtime/blas_loader.h"
#include "runtime/device.h"
#include "runtime/stream.h"
#include "test_harness.h"

using namespace lmk;
using Values = std::vector<double>;

static const Device kCpu{DeviceKind::CPU, 0};

// ---- helpers ------------------------------------------------------------------

static Values read(const Tensor& t) {
  std::vector<uint8_t> bytes = ops::read_to_host_blocking(t);
  DType host = ops::host_read_dtype(t.dtype);
  size_t n = bytes.size() / dtype_size(host);
  Values out(n);
  for (size_t i = 0; i < n; ++i) {
    if (host == DType::Float64)
      out[i] = reinterpret_cast<const double*>(bytes.data())[i];
    else if (host == DType::Int32)
      out[i] = reinterpret_cast<const int32_t*>(bytes.data())[i];
    else
      out[i] = reinterpret_cast<const float*>(bytes.data())[i];
  }
  return out;
}

static Tensor make(const Values& v, const Shape& shape, DType dtype = DType::Float64, const Device& d = kCpu) {
  return ops::from_host(v.data(), DType::Float64, static_cast<int64_t>(v.size()), shape, dtype, d);
}

static Tensor make_ids(const std::vector<int32_t>& v, const Shape& shape, const Device& d = kCpu) {
  return ops::from_host(v.data(), DType::Int32, static_cast<int64_t>(v.size()), shape, DType::Int32, d);
}

static int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t x : s) n *= x;
  return n;
}

static Values random_values(size_t n, uint32_t seed, double low = -1, double high = 1) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(low, high);
  Values v(n);
  for (double& x : v) x = dist(gen);
  return v;
}

// Values as stored in `dtype` (what the kernel sees).
static Values rounded(const Values& v, DType dtype) { return read(make(v, {static_cast<int64_t>(v.size())}, dtype)); }

static double rel(const Values& out, const Values& ref) { return lmk_test::relative_error(out, ref); }

// Central difference of Σ w·f(x) with respect to every x (float64).
static Values numeric_grad(const std::function<Values(const Values&)>& f, Values x, const Values& w, double h = 1e-6) {
  Values g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    double keep = x[i];
    x[i] = keep + h;
    Values up = f(x);
    x[i] = keep - h;
    Values down = f(x);
    x[i] = keep;
    double s = 0;
    for (size_t k = 0; k < w.size(); ++k) s += w[k] * (up[k] - down[k]);
    g[i] = s / (2 * h);
  }
  return g;
}

// ---- element-wise ---------------------------------------------------------------

TEST(binary_broadcasts_like_numpy) {
  Shape sa{2, 1, 3}, sb{4, 1};
  Values a = random_values(6, 1), b = random_values(4, 2, 0.5, 2);
  for (DType dt : {DType::Float64, DType::Float32, DType::BFloat16}) {
    Values ar = rounded(a, dt), br = rounded(b, dt);
    for (auto op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Maximum}) {
      Tensor out = ops::binary(op, make(a, sa, dt), make(b, sb, dt));
      CHECK(out.shape == (Shape{2, 4, 3}));
      Values ref;
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 4; ++j)
          for (int k = 0; k < 3; ++k) {
            double x = ar[i * 3 + k], y = br[j];
            double r = op == BinaryOp::Add   ? x + y
                       : op == BinaryOp::Sub ? x - y
                       : op == BinaryOp::Mul ? x * y
                       : op == BinaryOp::Div ? x / y
                                             : std::max(x, y);
            ref.push_back(r);
          }
      double tol = dt == DType::Float64 ? 1e-15 : dt == DType::Float32 ? 1e-6 : 1e-2;
      CHECK_LE(rel(read(out), ref), tol);
    }
  }
  CHECK_THROWS_KIND(ops::binary(BinaryOp::Add, make(a, {2, 3}), make(b, {4})), ErrorKind::Range,
                    "ops.add: a has shape [2,3] and b has shape [4]");
  CHECK_THROWS_KIND(ops::binary(BinaryOp::Add, make(a, {6}), make(a, {6}, DType::Float32)), ErrorKind::Type,
                    "ops.add: b must have dtype float64 like a");
}

TEST(unary_and_its_gradient_match_finite_differences) {
  Values x = random_values(37, 3, 0.2, 2.0);  // positive: log and sqrt are defined
  Values gy = random_values(37, 4);
  for (int o = 0; o < 10; ++o) {
    auto op = static_cast<UnaryOp>(o);
    auto f = [&](const Values& v) { return read(ops::unary(op, make(v, {37}))); };
    Tensor xt = make(x, {37});
    Tensor yt = ops::unary(op, xt);
    Tensor gx = ops::unary_backward(op, xt, yt, make(gy, {37}));
    CHECK_LE(rel(read(gx), numeric_grad(f, x, gy)), 1e-7);
  }
  Values xs = random_values(5, 5);
  CHECK_LE(rel(read(ops::unary(UnaryOp::Sigmoid, make(xs, {5}))),
               [&] {
                 Values r;
                 for (double v : xs) r.push_back(1 / (1 + std::exp(-v)));
                 return r;
               }()),
           1e-15);
  CHECK_THROWS_KIND(ops::unary_backward(UnaryOp::Exp, make(x, {37}), std::nullopt, make(gy, {37})), ErrorKind::Type,
                    "ops.expBackward: y (the forward's output) is required");
}

TEST(binary_backward_sums_over_broadcast_dims) {
  Shape sa{3, 1}, sb{4};
  Values a = random_values(3, 6, 0.5, 1.5), b = random_values(4, 7, 0.5, 1.5), gy = random_values(12, 8);
  for (auto op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Maximum}) {
    auto g = ops::binary_backward(op, make(a, sa), make(b, sb), make(gy, {3, 4}));
    CHECK(g.ga.shape == sa);
    CHECK(g.gb.shape == sb);
    auto fa = [&](const Values& v) { return read(ops::binary(op, make(v, sa), make(b, sb))); };
    auto fb = [&](const Values& v) { return read(ops::binary(op, make(a, sa), make(v, sb))); };
    CHECK_LE(rel(read(g.ga), numeric_grad(fa, a, gy)), 1e-7);
    CHECK_LE(rel(read(g.gb), numeric_grad(fb, b, gy)), 1e-7);
  }
}

TEST(scalar_ops_and_in_place_ops) {
  Values x = random_values(10, 9, 0.5, 2);
  Tensor t = make(x, {10});
  auto check = [&](ScalarOp op, double s, const std::function<double(double)>& f) {
    Values ref;
    for (double v : x) ref.push_back(f(v));
    CHECK_LE(rel(read(ops::scalar_op(op, t, s)), ref), 1e-15);
  };
  check(ScalarOp::Add, 2, [](double v) { return v + 2; });
  check(ScalarOp::Mul, -3, [](double v) { return -3 * v; });
  check(ScalarOp::Pow, 1.5, [](double v) { return std::pow(v, 1.5); });
  check(ScalarOp::RSub, 1, [](double v) { return 1 - v; });
  check(ScalarOp::DivBy, 2, [](double v) { return 2 / v; });
  Tensor target = make(x, {10});
  ops::add_in_place_(target, t, 0.5);
  Values ref;
  for (double v : x) ref.push_back(1.5 * v);
  CHECK_LE(rel(read(target), ref), 1e-15);
  ops::fill_(target, 7);
  CHECK(read(target) == Values(10, 7.0));
  Tensor half = ops::empty({10}, DType::BFloat16, kCpu);
  ops::copy_into_(half, t);
  CHECK_LE(rel(read(half), x), 1e-2);
  CHECK_THROWS_KIND(ops::add_in_place_(target, make(x, {2, 5}), 1), ErrorKind::Range, "ops.addInPlace_: src");
}

// ---- reductions -----------------------------------------------------------------

TEST(sum_over_any_axes_is_exact_in_float64_and_deterministic) {
  Shape shape{3, 4, 5, 2};
  Values x = random_values(static_cast<size_t>(numel(shape)), 10);
  auto ref_sum = [&](const std::vector<bool>& red) {
    Shape out;
    for (int d = 0; d < 4; ++d) out.push_back(red[d] ? 1 : shape[d]);
    Values r(static_cast<size_t>(numel(out)), 0.0);
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 4; ++j)
        for (int k = 0; k < 5; ++k)
          for (int l = 0; l < 2; ++l) {
            int64_t idx[4] = {i, j, k, l};
            int64_t o = 0;
            for (int d = 0; d < 4; ++d) o = o * out[d] + (red[d] ? 0 : idx[d]);
            r[o] += x[((i * 4 + j) * 5 + k) * 2 + l];
          }
    return r;
  };
  Tensor t = make(x, shape);
  CHECK_LE(rel(read(ops::sum(t, {1}, false)), ref_sum({false, true, false, false})), 1e-15);
  CHECK_LE(rel(read(ops::sum(t, {0, 2}, true)), ref_sum({true, false, true, false})), 1e-15);
  CHECK_LE(rel(read(ops::sum(t, {-1, 1}, false)), ref_sum({false, true, false, true})), 1e-15);
  Tensor all = ops::sum(t, {}, false);
  CHECK(all.shape.empty());
  CHECK_LE(rel(read(all), ref_sum({true, true, true, true})), 1e-15);
  // float32, a long axis: chunked, deterministic, accurate.
  Values big = random_values(300000, 11);
  Tensor bt = make(big, {3, 100000}, DType::Float32);
  Values s1 = read(ops::sum(bt, {1}, false)), s2 = read(ops::sum(bt, {1}, false));
  CHECK(s1 == s2);
  Values bref(3, 0.0);
  Values br = rounded(big, DType::Float32);
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 100000; ++c) bref[r] += br[r * 100000 + c];
  CHECK_LE(rel(s1, bref), 1e-5);
  Tensor col = ops::sum(make(big, {100000, 3}, DType::Float32), {0}, false);
  Values cref(3, 0.0);
  for (int r = 0; r < 100000; ++r)
    for (int c = 0; c < 3; ++c) cref[c] += br[r * 3 + c];
  CHECK_LE(rel(read(col), cref), 1e-5);
  CHECK_THROWS_KIND(ops::sum(t, {4}, false), ErrorKind::Range, "ops.sum: dim 4 is out of range");
  CHECK_THROWS_KIND(ops::sum(t, {1, -3}, false), ErrorKind::Range, "appears more than once");
}

TEST(sum_to_shape_and_expand_to_are_adjoint) {
  Values x = random_values(24, 12);
  Tensor t = make(x, {2, 3, 4});
  Tensor s = ops::sum_to_shape(t, {3, 1});
  CHECK(s.shape == (Shape{3, 1}));
  Values ref(3, 0.0);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) ref[j] += x[(i * 3 + j) * 4 + k];
  CHECK_LE(rel(read(s), ref), 1e-15);
  Tensor e = ops::expand_to(make({1, 2, 3}, {3, 1}), {2, 3, 4});
  Values ev = read(e);
  CHECK_EQ(ev.size(), size_t(24));
  CHECK_EQ(ev[(1 * 3 + 2) * 4 + 3], 3.0);
  CHECK_THROWS_KIND(ops::sum_to_shape(t, {5}), ErrorKind::Range, "ops.sumToShape");
  CHECK_THROWS_KIND(ops::expand_to(t, {3, 4}), ErrorKind::Range, "ops.expandTo");
}

// ---- matmul ---------------------------------------------------------------------

static Values ref_matmul(const Values& a, const Values& b, int64_t batch, int64_t M, int64_t N, int64_t K, bool ta,
                         bool tb, bool b_shared) {
  Values out(static_cast<size_t>(batch * M * N), 0.0);
  for (int64_t z = 0; z < batch; ++z)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k) {
          double av = ta ? a[z * M * K + k * M + i] : a[z * M * K + i * K + k];
          int64_t bz = b_shared ? 0 : z * K * N;
          double bv = tb ? b[bz + j * K + k] : b[bz + k * N + j];
          s += av * bv;
        }
        out[z * M * N + i * N + j] = s;
      }
  return out;
}

static void check_matmul_cases(kernels::GemmKernel kernel, const Device& device) {
  ops::set_gemm_kernel(kernel);
  struct Case {
    int64_t batch, M, N, K;
    bool ta, tb, shared;
  };
  std::vector<Case> cases = {{1, 1, 1, 1, false, false, true},    {1, 7, 13, 5, false, false, true},
                             {3, 33, 65, 70, true, false, false}, {2, 64, 96, 300, false, true, false},
                             {4, 10, 33, 17, false, false, true}, {1, 130, 70, 513, true, true, true},
                             {2, 5, 3, 0, false, false, false}};
  for (const Case& c : cases) {
    Shape sa = c.ta ? Shape{c.batch, c.K, c.M} : Shape{c.batch, c.M, c.K};
    Shape sb = c.tb ? Shape{c.N, c.K} : Shape{c.K, c.N};
    if (!c.shared) sb.insert(sb.begin(), c.batch);
    Values a = random_values(static_cast<size_t>(numel(sa)), 20), b = random_values(static_cast<size_t>(numel(sb)), 21);
    for (DType dt : {DType::Float64, DType::Float32, DType::BFloat16, DType::Float16}) {
      if (dt == DType::Float64 && device.is_cuda()) continue;
      Values ar = rounded(a, dt), br = rounded(b, dt);
      Values ref = ref_matmul(ar, br, c.batch, c.M, c.N, c.K, c.ta, c.tb, c.shared);
      Tensor out = ops::matmul(make(a, sa, dt, device), make(b, sb, dt, device), c.ta, c.tb);
      CHECK(out.shape == (Shape{c.batch, c.M, c.N}));
      double tol = dt == DType::Float64 ? 1e-13 : dt == DType::Float32 ? 1e-5 : 1e-2;
      double err = rel(read(out), ref);
      if (!(err <= tol))
        std::fprintf(stderr, "  matmul M=%ld N=%ld K=%ld dtype=%s: %g\n", long(c.M), long(c.N), long(c.K),
                     dtype_name(dt), err);
      CHECK_LE(err, tol);
    }
  }
  // Broadcast batch dims: a [2,1,M,K] · b [1,3,K,N].
  Values a = random_values(2 * 4 * 5, 22), b = random_values(3 * 5 * 6, 23);
  Tensor out = ops::matmul(make(a, {2, 1, 4, 5}, DType::Float32, device), make(b, {1, 3, 5, 6}, DType::Float32, device),
                           false, false);
  CHECK(out.shape == (Shape{2, 3, 4, 6}));
  Values ov = read(out), ar = rounded(a, DType::Float32), br = rounded(b, DType::Float32);
  double worst = 0;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) {
      Values r = ref_matmul(Values(ar.begin() + i * 20, ar.begin() + (i + 1) * 20),
                            Values(br.begin() + j * 30, br.begin() + (j + 1) * 30), 1, 4, 6, 5, false, false, true);
      Values o(ov.begin() + (i * 3 + j) * 24, ov.begin() + (i * 3 + j + 1) * 24);
      worst = std::max(worst, rel(o, r));
    }
  CHECK_LE(worst, 1e-5);
  ops::set_gemm_kernel(kernels::GemmKernel::Library);
}

TEST(matmul_builtin_matches_float64_reference) { check_matmul_cases(kernels::GemmKernel::Builtin, kCpu); }

TEST(matmul_openblas_matches_float64_reference) {
  if (!blas::openblas()) {
    std::printf("  (OpenBLAS not loadable here: skipped)\n");
    return;
  }
  check_matmul_cases(kernels::GemmKernel::Library, kCpu);
  CHECK(ops::gemm_info().cpu == "openblas");
}

TEST(matmul_rejects_bad_shapes) {
  CHECK_THROWS_KIND(ops::matmul(make(Values(6), {2, 3}), make(Values(20), {4, 5}), false, false), ErrorKind::Range,
                    "ops.matmul: a has shape [2,3] but b has shape [4,5]: inner sizes 3 and 4 differ");
  CHECK_THROWS_KIND(ops::matmul(make(Values(6), {6}), make(Values(6), {6, 1}), false, false), ErrorKind::Range,
                    "ops.matmul: a must have shape [..., M, K]");
  CHECK_THROWS_KIND(ops::matmul(make(Values(24), {2, 3, 4}), make(Values(60), {3, 4, 5}), false, false),
                    ErrorKind::Range, "do not broadcast");
}

// ---- norms ----------------------------------------------------------------------

static Values ref_layer_norm(const Values& x, const Values* w, const Values* b, int64_t rows, int64_t C, double eps,
                             bool rms) {
  Values y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < C; ++i) mean += x[r * C + i];
    mean = rms ? 0 : mean / C;
    for (int64_t i = 0; i < C; ++i) var += (x[r * C + i] - mean) * (x[r * C + i] - mean);
    double rstd = 1 / std::sqrt(var / C + eps);
    for (int64_t i = 0; i < C; ++i) {
      double v = (x[r * C + i] - mean) * rstd;
      if (w) v *= (*w)[i];
      if (b) v += (*b)[i];
      y[r * C + i] = v;
    }
  }
  return y;
}

// The dense kernels' type switch: each float dtype reaches its C++ type;
// int32 (and float64 for the CUDA kernels) is an internal error, never a
// reinterpretation of the data as float.
TEST(dispatch_float_rejects_non_float_dtypes) {
  auto type_of = [](DType dtype) {
    std::string name;
    kernels::dispatch_float(dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      name = std::is_same<T, float>::value    ? "float"
             : std::is_same<T, double>::value ? "double"
             : std::is_same<T, bf16>::value   ? "bf16"
             : std::is_same<T, f16>::value    ? "f16"
                                              : "other";
    });
    return name;
  };
  CHECK(type_of(DType::Float32) == "float");
  CHECK(type_of(DType::Float64) == "double");
  CHECK(type_of(DType::BFloat16) == "bf16");
  CHECK(type_of(DType::Float16) == "f16");
  int calls = 0;
  CHECK_THROWS_KIND(kernels::dispatch_float(DType::Int32, [&](auto) { ++calls; }), ErrorKind::Runtime,
                    "internal error: a floating-point kernel was called for dtype int32");
  CHECK_THROWS_KIND(kernels::dispatch_float<false>(DType::Float64, [&](auto) { ++calls; }), ErrorKind::Runtime,
                    "(CUDA) was called for dtype float64");
  CHECK_EQ(calls, 0);
}

TEST(layer_norm_and_rms_norm_forward_and_gradients) {
  const int64_t rows = 6, C = 9;
  const double eps = 1e-5;
  Values x = random_values(rows * C, 30, -2, 2), w = random_values(C, 31, 0.5, 1.5), b = random_values(C, 32);
  Values gy = random_values(rows * C, 33);
  Shape sx{2, 3, C};
  for (bool rms : {false, true}) {
    auto forward = [&](const Values& xv, const Values& wv, const Values& bv) {
      if (rms) return read(ops::rms_norm(make(xv, sx), make(wv, {C}), eps).y);
      return read(ops::layer_norm(make(xv, sx), make(wv, {C}), make(bv, {C}), eps).y);
    };
    CHECK_LE(rel(forward(x, w, b), ref_layer_norm(x, &w, rms ? nullptr : &b, rows, C, eps, rms)), 1e-13);
    ops::NormGrads g;
    if (rms) {
      auto f = ops::rms_norm(make(x, sx), make(w, {C}), eps);
      g = ops::rms_norm_backward(make(x, sx), make(w, {C}), f.rstd, make(gy, sx));
    } else {
      auto f = ops::layer_norm(make(x, sx), make(w, {C}), make(b, {C}), eps);
      g = ops::layer_norm_backward(make(x, sx), make(w, {C}), f.mean, f.rstd, make(gy, sx), true);
    }
    CHECK_LE(rel(read(g.gx), numeric_grad([&](const Values& v) { return forward(v, w, b); }, x, gy)), 1e-7);
    CHECK_LE(rel(read(*g.gweight), numeric_grad([&](const Values& v) { return forward(x, v, b); }, w, gy)), 1e-7);
    if (!rms) {
      CHECK_LE(rel(read(*g.gbias), numeric_grad([&](const Values& v) { return forward(x, w, v); }, b, gy)), 1e-7);
    }
  }
  // float32 forward against the float64 reference of the rounded input.
  Values xr = rounded(x, DType::Float32), wr = rounded(w, DType::Float32), br = rounded(b, DType::Float32);
  auto y32 =
      ops::layer_norm(make(x, sx, DType::Float32), make(w, {C}, DType::Float32), make(b, {C}, DType::Float32), eps);
  CHECK_LE(rel(read(y32.y), ref_layer_norm(xr, &wr, &br, rows, C, eps, false)), 1e-5);
  CHECK(y32.mean.dtype == DType::Float32);
  CHECK_THROWS_KIND(ops::layer_norm(make(x, sx), make(w, {C}), make(Values(4), {4}), eps), ErrorKind::Range,
                    "ops.layerNorm: bias must have shape [C] = [9]");
}

// ---- embedding ------------------------------------------------------------------

TEST(embedding_gathers_and_scatters_deterministically) {
  const int64_t V = 5, D = 3;
  Values w = random_values(V * D, 40);
  std::vector<int32_t> ids = {4, 0, 4, 2, 4, 1};
  Tensor out = ops::embedding(make(w, {V, D}), make_ids(ids, {2, 3}));
  CHECK(out.shape == (Shape{2, 3, D}));
  Values ov = read(out), ref;
  for (int32_t id : ids)
    for (int64_t d = 0; d < D; ++d) ref.push_back(w[id * D + d]);
  CHECK(ov == ref);
  Values g = random_values(6 * D, 41);
  Tensor gw = ops::embedding_backward(make(g, {2, 3, D}, DType::Float32), make_ids(ids, {2, 3}), V);
  Values gref(V * D, 0.0), gr = rounded(g, DType::Float32);
  for (size_t n = 0; n < ids.size(); ++n)
    for (int64_t d = 0; d < D; ++d) gref[ids[n] * D + d] += gr[n * D + d];
  Values first = read(gw);
  CHECK_LE(rel(first, gref), 1e-6);
  for (int run = 0; run < 3; ++run) {
    CHECK(read(ops::embedding_backward(make(g, {2, 3, D}, DType::Float32), make_ids(ids, {2, 3}), V)) == first);
  }
  // A bad id: no error now, a RangeError at the next sync naming ids and the index.
  Tensor bad = ops::embedding(make(w, {V, D}), make_ids({1, 7, 2}, {3}));
  CHECK_THROWS_KIND(stream_for(kCpu).synchronize(), ErrorKind::Range,
                    "ops.embedding: ids has a value outside [0, 5) at flat index 1");
  CHECK_THROWS_KIND(read(bad), ErrorKind::Range, "flat index 1");
  CHECK_THROWS_KIND(ops::embedding(make(w, {V, D}), make(Values{1}, {1})), ErrorKind::Type,
                    "ops.embedding: ids must have dtype int32");
}

// ---- rope -----------------------------------------------------------------------

TEST(rope_rotates_interleaved_pairs_and_inverts) {
  const int64_t B = 2, H = 2, T = 3, D = 4;
  const double base = 10000;
  Values x = random_values(B * H * T * D, 50);
  std::vector<int32_t> pos = {0, 5, 100000, 3, 1, 7};  // [B, T]
  Tensor y = ops::rope(make(x, {B, H, T, D}), make_ids(pos, {B, T}), base, false);
  Values ref(x.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t i = 0; i < D / 2; ++i) {
          double angle = pos[b * T + t] * std::pow(base, -2.0 * i / D);
          int64_t o = ((b * H + h) * T + t) * D + 2 * i;
          ref[o] = x[o] * std::cos(angle) - x[o + 1] * std::sin(angle);
          ref[o + 1] = x[o] * std::sin(angle) + x[o + 1] * std::cos(angle);
        }
  CHECK_LE(rel(read(y), ref), 1e-14);
  Tensor back = ops::rope(y, make_ids(pos, {B, T}), base, true);
  CHECK_LE(rel(read(back), x), 1e-14);
  Values x32 = rounded(x, DType::Float32);
  Tensor y32 = ops::rope(make(x, {B, H, T, D}, DType::Float32), make_ids(pos, {B, T}), base, false);
  CHECK_LE(rel(read(y32), read(ops::rope(make(x32, {B, H, T, D}), make_ids(pos, {B, T}), base, false))), 1e-6);
  CHECK_THROWS_KIND(ops::rope(make(x, {B, H, T, D}), make_ids({0, 1}, {2}), base, false), ErrorKind::Range,
                    "ops.rope: positions must have shape [T] = [3]");
}

// ---- shape ops ------------------------------------------------------------------

TEST(shape_ops_copy_the_right_elements) {
  Values x = random_values(24, 60);
  Tensor t = make(x, {2, 3, 4});
  Values p = read(ops::permute(t, {2, 0, 1}));
  CHECK_EQ(p[(3 * 2 + 1) * 3 + 2], x[(1 * 3 + 2) * 4 + 3]);
  Values s = read(ops::slice(t, 1, -2, 3));
  CHECK_EQ(s.size(), size_t(16));
  CHECK_EQ(s[(1 * 2 + 1) * 4 + 2], x[(1 * 3 + 2) * 4 + 2]);
  Values sb = read(ops::slice_backward(ops::slice(t, 1, 1, 3), {2, 3, 4}, 1, 1, 3));
  CHECK_EQ(sb[(0 * 3 + 0) * 4 + 1], 0.0);
  CHECK_EQ(sb[(1 * 3 + 2) * 4 + 1], x[(1 * 3 + 2) * 4 + 1]);
  Values c = read(ops::concat({t, ops::slice(t, 2, 0, 1)}, -1));
  CHECK_EQ(c.size(), size_t(30));
  CHECK_EQ(c[(1 * 3 + 2) * 5 + 4], x[(1 * 3 + 2) * 4 + 0]);
  Values ts = read(ops::token_shift(t));
  CHECK_EQ(ts[(1 * 3 + 0) * 4 + 2], 0.0);
  CHECK_EQ(ts[(1 * 3 + 2) * 4 + 2], x[(1 * 3 + 1) * 4 + 2]);
  Values tb = read(ops::token_shift_backward(t));
  CHECK_EQ(tb[(0 * 3 + 2) * 4 + 1], 0.0);
  CHECK_EQ(tb[(0 * 3 + 1) * 4 + 1], x[(0 * 3 + 2) * 4 + 1]);
  CHECK_THROWS_KIND(ops::slice(t, 1, 0, 4), ErrorKind::Range, "ops.slice: start 0 and end 4 are out of range");
  CHECK_THROWS_KIND(ops::permute(t, {0, 0, 1}), ErrorKind::Range, "ops.permute");
  CHECK_THROWS_KIND(ops::concat({t, make(x, {2, 12})}, 0), ErrorKind::Range, "ops.concat: xs[1]");
}

// ---- optimizer ------------------------------------------------------------------

TEST(adamw_matches_pytorch_and_clipping_matches_reference) {
  const int64_t n = 50;
  Values p0 = random_values(n, 70), m(n, 0.0), v(n, 0.0), p = p0;
  Tensor param = make(p0, {n}), ea = make(m, {n}), eas = make(v, {n});
  const double lr = 0.01, b1 = 0.9, b2 = 0.99, eps = 1e-8, wd = 0.1;
  for (int step = 1; step <= 4; ++step) {
    Values g = random_values(n, 71 + step);
    ops::AdamwArgs args{param, make(g, {n}), ea, eas, lr, b1, b2, eps, wd, double(step)};
    ops::adamw_step_(args);
    for (int64_t i = 0; i < n; ++i) {
      p[i] *= 1 - lr * wd;
      m[i] = m[i] + (1 - b1) * (g[i] - m[i]);
      v[i] = v[i] * b2 + (1 - b2) * g[i] * g[i];
      double denom = std::sqrt(v[i]) / std::sqrt(1 - std::pow(b2, step)) + eps;
      p[i] -= lr / (1 - std::pow(b1, step)) * m[i] / denom;
    }
  }
  CHECK_LE(rel(read(param), p), 1e-13);
  CHECK_LE(rel(read(ea), m), 1e-13);
  CHECK_LE(rel(read(eas), v), 1e-13);
  // bf16 params with float32 moments.
  Tensor pb = make(p0, {n}, DType::BFloat16), mb = ops::full({n}, 0, DType::Float32, kCpu),
         vb = ops::full({n}, 0, DType::Float32, kCpu);
  ops::adamw_step_({pb, make(p0, {n}, DType::BFloat16), mb, vb, lr, b1, b2, eps, wd, 1});
  CHECK(read(pb) != rounded(p0, DType::BFloat16));
  CHECK_THROWS_KIND(ops::adamw_step_({param, make(p0, {n}), ea, eas, lr, 1.0, b2, eps, wd, 1}), ErrorKind::Range,
                    "optim.AdamW.step: beta1 must be a finite number in [0, 1)");
  CHECK_THROWS_KIND(ops::adamw_step_({param, make(p0, {n}), ea, eas, lr, b1, b2, eps, wd, 0}), ErrorKind::Range,
                    "step must be an integer >= 1");

  Values g1 = random_values(7, 80), g2 = random_values(100000, 81);
  double total = 0;
  for (double x : g1) total += x * x;
  for (double x : g2) total += x * x;
  double norm = std::sqrt(total), max_norm = 0.5, coef = max_norm / (norm + 1e-6);
  Tensor t1 = make(g1, {7}), t2 = make(g2, {100, 1000});
  Tensor nt = ops::grad_norm_clip_({t1, t2}, max_norm);
  CHECK(nt.shape.empty() && nt.dtype == DType::Float64);
  CHECK_LE(std::fabs(read(nt)[0] - norm) / norm, 1e-12);
  Values r1;
  for (double x : g1) r1.push_back(x * coef);
  CHECK_LE(rel(read(t1), r1), 1e-12);
  // A norm under maxNorm leaves the gradients alone.
  Tensor t3 = make(g1, {7});
  ops::grad_norm_clip_({t3}, 1e6);
  CHECK(read(t3) == g1);
  Tensor f32 = make(g2, {100000}, DType::Float32);
  Tensor n32 = ops::grad_norm_clip_({f32}, 1.0);
  CHECK(n32.dtype == DType::Float32);
  double n2 = 0;
  for (double x : rounded(g2, DType::Float32)) n2 += x * x;
  CHECK_LE(std::fabs(read(n32)[0] - std::sqrt(n2)) / std::sqrt(n2), 1e-6);
}

// ---- CUDA against the CPU (when a GPU is present) ----------------------------------

TEST(cuda_kernels_match_the_cpu) {
  if (!cuda_info().available) {
    std::printf("  (no CUDA device: skipped)\n");
    return;
  }
  const Device gpu{DeviceKind::CUDA, 0};
  auto to_gpu = [&](const Tensor& t) { return ops::to_device(t, gpu); };
  auto same = [&](const Tensor& on_gpu, const Tensor& on_cpu, double tol, const char* what) {
    double err = rel(read(on_gpu), read(on_cpu));
    if (!(err <= tol)) std::fprintf(stderr, "  cuda %s: %g\n", what, err);
    CHECK_LE(err, tol);
  };
  for (DType dt : {DType::Float32, DType::BFloat16}) {
    double tol = dt == DType::Float32 ? 1e-5 : 1e-2;
    Tensor a = make(random_values(6 * 70, 90), {2, 3, 70}, dt), b = make(random_values(70, 91, 0.5, 2), {70}, dt);
    for (int o = 0; o < 5; ++o) {
      auto op = static_cast<BinaryOp>(o);
      same(ops::binary(op, to_gpu(a), to_gpu(b)), ops::binary(op, a, b), tol, "binary");
      auto gg = ops::binary_backward(op, to_gpu(a), to_gpu(b), to_gpu(a));
      auto gc = ops::binary_backward(op, a, b, a);
      same(gg.ga, gc.ga, tol, "binary backward a");
      same(gg.gb, gc.gb, tol, "binary backward b");
    }
    Tensor pos = ops::unary(UnaryOp::Abs, a);
    for (int o = 0; o < 10; ++o) {
      auto op = static_cast<UnaryOp>(o);
      Tensor y = ops::unary(op, pos);
      same(ops::unary(op, to_gpu(pos)), y, tol, "unary");
      same(ops::unary_backward(op, to_gpu(pos), to_gpu(y), to_gpu(a)), ops::unary_backward(op, pos, y, a), tol,
           "unary backward");
    }
    same(ops::sum(to_gpu(a), {0, 2}, false), ops::sum(a, {0, 2}, false), tol, "sum");
    Tensor long_rows = make(random_values(3 * 50000, 92), {3, 50000}, dt);
    same(ops::sum(to_gpu(long_rows), {1}, false), ops::sum(long_rows, {1}, false), tol, "sum rows");
    same(ops::sum(to_gpu(long_rows), {0}, false), ops::sum(long_rows, {0}, false), tol, "sum columns");
    auto ln_g = ops::layer_norm(to_gpu(a), to_gpu(b), to_gpu(b), 1e-5);
    auto ln_c = ops::layer_norm(a, b, b, 1e-5);
    same(ln_g.y, ln_c.y, tol, "layer norm");
    auto lb_g = ops::layer_norm_backward(to_gpu(a), to_gpu(b), ln_g.mean, ln_g.rstd, to_gpu(a), true);
    auto lb_c = ops::layer_norm_backward(a, b, ln_c.mean, ln_c.rstd, a, true);
    same(lb_g.gx, lb_c.gx, tol, "layer norm gx");
    same(*lb_g.gweight, *lb_c.gweight, tol, "layer norm gWeight");
    same(*lb_g.gbias, *lb_c.gbias, tol, "layer norm gBias");
    auto rn_g = ops::rms_norm(to_gpu(a), to_gpu(b), 1e-5);
    auto rn_c = ops::rms_norm(a, b, 1e-5);
    same(rn_g.y, rn_c.y, tol, "rms norm");
    same(ops::rms_norm_backward(to_gpu(a), to_gpu(b), rn_g.rstd, to_gpu(a)).gx,
         ops::rms_norm_backward(a, b, rn_c.rstd, a).gx, tol, "rms norm gx");
    // Rows wider than the 256-thread block, so that every thread's partial sum is
    // nonzero and each barrier of the block's tree matters; 5 rows loop under a capped grid.
    Tensor wide = make(random_values(5 * 300, 95), {5, 300}, dt);
    Tensor wide_w = make(random_values(300, 96, 0.5, 2), {300}, dt);
    same(ops::layer_norm(to_gpu(wide), to_gpu(wide_w), to_gpu(wide_w), 1e-5).y,
         ops::layer_norm(wide, wide_w, wide_w, 1e-5).y, tol, "layer norm, wide rows");
    same(ops::rms_norm(to_gpu(wide), to_gpu(wide_w), 1e-5).y, ops::rms_norm(wide, wide_w, 1e-5).y, tol,
         "rms norm, wide rows");
    Tensor ids = make_ids({3, 1, 3, 0, 2, 3}, {2, 3});
    Tensor w = make(random_values(4 * 70, 93), {4, 70}, dt);
    same(ops::embedding(to_gpu(w), to_gpu(ids)), ops::embedding(w, ids), 0, "embedding");
    same(ops::embedding_backward(to_gpu(a), to_gpu(ids), 4), ops::embedding_backward(a, ids, 4), tol,
         "embedding backward");
    Tensor pos_ids = make_ids({0, 9, 70000}, {3});
    Tensor xr = make(random_values(2 * 3 * 70, 94), {2, 3, 70}, dt);
    same(ops::rope(to_gpu(xr), to_gpu(pos_ids), 10000, false), ops::rope(xr, pos_ids, 10000, false), tol, "rope");
    same(ops::permute(to_gpu(a), {2, 0, 1}), ops::permute(a, {2, 0, 1}), 0, "permute");
    same(ops::token_shift(to_gpu(a)), ops::token_shift(a), 0, "token shift");
    same(ops::slice_backward(to_gpu(a), {2, 5, 70}, 1, 1, 4), ops::slice_backward(a, {2, 5, 70}, 1, 1, 4), 0,
         "slice backward");
    same(ops::concat({to_gpu(a), to_gpu(a)}, 1), ops::concat({a, a}, 1), 0, "concat");
    same(ops::expand_to(to_gpu(b), {3, 70}), ops::expand_to(b, {3, 70}), 0, "expandTo");
    Tensor pc = ops::clone(a), pg = to_gpu(a);
    Tensor mc = ops::full(a.shape, 0, DType::Float32, kCpu), vc = ops::full(a.shape, 0, DType::Float32, kCpu);
    Tensor mg = to_gpu(mc), vg = to_gpu(vc);
    for (int step = 1; step <= 3; ++step) {
      ops::adamw_step_({pc, a, mc, vc, 0.01, 0.9, 0.999, 1e-8, 0.1, double(step)});
      ops::adamw_step_({pg, to_gpu(a), mg, vg, 0.01, 0.9, 0.999, 1e-8, 0.1, double(step)});
    }
    same(pg, pc, tol, "adamw param");
    same(vg, vc, 1e-5, "adamw expAvgSq");
    Tensor gc1 = ops::clone(long_rows), gg1 = to_gpu(long_rows);
    same(ops::grad_norm_clip_({gg1}, 1.0), ops::grad_norm_clip_({gc1}, 1.0), 1e-5, "clip norm");
    same(gg1, gc1, tol, "clipped grads");
    Tensor bad = ops::embedding(to_gpu(w), to_gpu(make_ids({0, 9}, {2})));
    CHECK_THROWS_KIND(cuda_stream(0).synchronize(), ErrorKind::Range, "at flat index 1");
    CHECK_THROWS_KIND(read(bad), ErrorKind::Range, "flat index 1");
  }
  // Every GEMM kernel on the GPU against float64 references.
#ifdef LMK_WITH_CUDA
  std::printf("  cuBLAS usable: %s\n", kernels::cublas_usable() ? "yes" : "no");
#endif
  check_matmul_cases(kernels::GemmKernel::Library, gpu);
  check_matmul_cases(kernels::GemmKernel::Builtin, gpu);
  kernels::ScopedKernelVariant reference(kernels::KernelFamily::Matmul, kernels::KernelVariant::Reference);
  check_matmul_cases(kernels::GemmKernel::Library, gpu);  // the reference kernel even where cuBLAS loads
}

LMK_TEST_MAIN()
