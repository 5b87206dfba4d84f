// wkv4 (docs/kernels.md#wkv4): the kernels against a float64 evaluation of the
// direct formula (plain sums with log-sum-exp, written here independently of
// the recurrence), gradients against central finite differences in float64
// (of the op itself and of the direct formula), step == forward, chained
// chunks == one call (values and every gradient), the extreme inputs, every
// dtype's accuracy bar, and argument validation. CUDA cases run against the
// CPU when a device is present.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <future>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels/test_hooks.h"
#include "kernels/wkv4/wkv4.h"
#include "math/half.h"
#include "math/wkv4.h"
#include "ops/tensor_ops.h"
#include "ops/wkv4.h"
#include "runtime/device.h"
#include "runtime/error.h"
#include "runtime/stream.h"
#include "test_harness.h"

using namespace lmk;
using lmk_test::relative_error;
using Vec = std::vector<double>;

namespace {

const Device kCpu{DeviceKind::CPU, 0};
const Device kCuda{DeviceKind::CUDA, 0};

bool cuda_usable() { return cuda_info().available && !cuda_info().devices.empty(); }

// ---- tensors in and out ---------------------------------------------------------

Tensor make(const Vec& data, const Shape& shape, DType dtype, const Device& device) {
  return ops::from_host(data.data(), DType::Float64, static_cast<int64_t>(data.size()), shape, dtype, device);
}

// Blocks until every queued op before it has run; throws the recorded error.
Vec read(const Tensor& t) {
  std::vector<uint8_t> bytes = ops::read_to_host_blocking(t);
  Vec out(static_cast<size_t>(t.numel()));
  if (ops::host_read_dtype(t.dtype) == DType::Float64) {
    const double* d = reinterpret_cast<const double*>(bytes.data());
    for (size_t i = 0; i < out.size(); ++i) out[i] = d[i];
  } else {
    const float* f = reinterpret_cast<const float*>(bytes.data());
    for (size_t i = 0; i < out.size(); ++i) out[i] = f[i];
  }
  return out;
}

// The values a dtype stores for `data` (what the reference must see).
Vec round_to(const Vec& data, DType dtype) {
  if (dtype == DType::Float64) return data;
  return read(make(data, {static_cast<int64_t>(data.size())}, dtype, kCpu));
}

DType acc_of(DType dtype) { return dtype == DType::Float64 ? DType::Float64 : DType::Float32; }

bool all_finite(const Vec& x) {
  for (double v : x) {
    if (!std::isfinite(v)) return false;
  }
  return true;
}

Vec slice_t(const Vec& x, int64_t B, int64_t T, int64_t C, int64_t t0, int64_t t1) {
  Vec out;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = t0; t < t1; ++t)
      for (int64_t c = 0; c < C; ++c) out.push_back(x[(b * T + t) * C + c]);
  return out;
}

Vec concat_t(const Vec& a, int64_t Ta, const Vec& b, int64_t Tb, int64_t B, int64_t C) {
  Vec out;
  for (int64_t i = 0; i < B; ++i) {
    out.insert(out.end(), a.begin() + i * Ta * C, a.begin() + (i + 1) * Ta * C);
    out.insert(out.end(), b.begin() + i * Tb * C, b.begin() + (i + 1) * Tb * C);
  }
  return out;
}

Vec add(const Vec& a, const Vec& b) {
  Vec out(a.size());
  for (size_t i = 0; i < a.size(); ++i) out[i] = a[i] + b[i];
  return out;
}

// ---- a problem and the op on it -------------------------------------------------

struct Case {
  int64_t B = 0, T = 0, C = 0;
  Vec td, tf, k, v;
  Vec state;   // [B,3,C] or empty: none
  Vec gy;      // [B,T,C]
  Vec gstate;  // [B,3,C] or empty: none
  bool has_state() const { return !state.empty(); }
  bool has_gstate() const { return !gstate.empty(); }
};

struct Forward {
  Vec y, state;
};
struct Backward {
  Vec gtd, gtf, gk, gv, gstate;
};

// Random inputs: td in [-2.5, 1] (so w in [-2.7, -0.08]), tf in [-1, 1],
// k ~ N(0, k_scale^2), v ~ N(0, 1); a state with bb > 0 as a real one has.
Case random_case(int64_t B, int64_t T, int64_t C, bool state, bool gstate, uint64_t seed, double k_scale = 1.5) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  std::normal_distribution<double> normal(0.0, 1.0);
  Case c;
  c.B = B;
  c.T = T;
  c.C = C;
  for (int64_t i = 0; i < C; ++i) {
    c.td.push_back(-2.5 + 3.5 * uni(rng));
    c.tf.push_back(-1 + 2 * uni(rng));
  }
  for (int64_t i = 0; i < B * T * C; ++i) {
    c.k.push_back(k_scale * normal(rng));
    c.v.push_back(normal(rng));
    c.gy.push_back(normal(rng));
  }
  if (state) {
    c.state.resize(static_cast<size_t>(B * 3 * C));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < C; ++i) {
        c.state[(b * 3 + 0) * C + i] = normal(rng);
        c.state[(b * 3 + 1) * C + i] = 0.5 + 2 * uni(rng);
        c.state[(b * 3 + 2) * C + i] = 2 * normal(rng);
      }
  }
  if (gstate) {
    for (int64_t i = 0; i < B * 3 * C; ++i) c.gstate.push_back(normal(rng));
  }
  return c;
}

// The case's inputs as a dtype stores them (k, v, gy in `dtype`; the rest in
// its accumulation dtype).
Case rounded(const Case& c, DType dtype) {
  Case r = c;
  DType acc = acc_of(dtype);
  r.td = round_to(c.td, acc);
  r.tf = round_to(c.tf, acc);
  r.k = round_to(c.k, dtype);
  r.v = round_to(c.v, dtype);
  r.gy = round_to(c.gy, dtype);
  if (c.has_state()) r.state = round_to(c.state, acc);
  if (c.has_gstate()) r.gstate = round_to(c.gstate, acc);
  return r;
}

Forward run_forward(const Case& c, DType dtype, const Device& device) {
  DType acc = acc_of(dtype);
  ops::Wkv4ForwardArgs args;
  args.time_decay = make(c.td, {c.C}, acc, device);
  args.time_first = make(c.tf, {c.C}, acc, device);
  args.k = make(c.k, {c.B, c.T, c.C}, dtype, device);
  args.v = make(c.v, {c.B, c.T, c.C}, dtype, device);
  if (c.has_state()) args.state = make(c.state, {c.B, 3, c.C}, acc, device);
  ops::Wkv4ForwardResult out = ops::wkv4_forward(args);
  return {read(out.y), read(out.state)};
}

Backward run_backward(const Case& c, DType dtype, const Device& device) {
  DType acc = acc_of(dtype);
  ops::Wkv4BackwardArgs args;
  args.time_decay = make(c.td, {c.C}, acc, device);
  args.time_first = make(c.tf, {c.C}, acc, device);
  args.k = make(c.k, {c.B, c.T, c.C}, dtype, device);
  args.v = make(c.v, {c.B, c.T, c.C}, dtype, device);
  if (c.has_state()) args.state = make(c.state, {c.B, 3, c.C}, acc, device);
  args.y = ops::full({c.B, c.T, c.C}, 0.0, dtype, device);  // not read by the kernel
  args.gy = make(c.gy, {c.B, c.T, c.C}, dtype, device);
  if (c.has_gstate()) args.gstate = make(c.gstate, {c.B, 3, c.C}, acc, device);
  ops::Wkv4BackwardResult out = ops::wkv4_backward(args);
  Backward g{read(out.gtime_decay), read(out.gtime_first), read(out.gk), read(out.gv), {}};
  CHECK_EQ(out.gstate.has_value(), c.has_state());
  if (out.gstate) g.gstate = read(*out.gstate);
  return g;
}

// ---- the direct formula, float64 ------------------------------------------------
//
//   y_t = ( e^{pp0 + t·w} aa0 + Σ_{i<t} e^{(t-1-i)w + k_i} v_i + e^{u + k_t} v_t )
//       / ( e^{pp0 + t·w} bb0 + Σ_{i<t} e^{(t-1-i)w + k_i}     + e^{u + k_t}     )
// every exponent shifted by the largest before exponentiating.

double direct_y(const Case& c, int64_t b, int64_t t, int64_t ch) {
  const int64_t C = c.C, T = c.T;
  const double w = -std::exp(c.td[ch]), u = c.tf[ch];
  auto kk = [&](int64_t i) { return c.k[(b * T + i) * C + ch]; };
  auto vv = [&](int64_t i) { return c.v[(b * T + i) * C + ch]; };
  double m = u + kk(t);
  for (int64_t i = 0; i < t; ++i) m = std::max(m, (t - 1 - i) * w + kk(i));
  double state_exp = 0, aa0 = 0, bb0 = 0;
  bool with_state = c.has_state();
  if (with_state) {
    aa0 = c.state[(b * 3 + 0) * C + ch];
    bb0 = c.state[(b * 3 + 1) * C + ch];
    state_exp = c.state[(b * 3 + 2) * C + ch] + t * w;
    m = std::max(m, state_exp);
  }
  double num = 0, den = 0;
  for (int64_t i = 0; i < t; ++i) {
    double e = std::exp((t - 1 - i) * w + kk(i) - m);
    num += e * vv(i);
    den += e;
  }
  double e = std::exp(u + kk(t) - m);
  num += e * vv(t);
  den += e;
  if (with_state) {
    double es = std::exp(state_exp - m);
    num += es * aa0;
    den += es * bb0;
  }
  return num / den;
}

Vec direct_y_all(const Case& c) {
  Vec y(static_cast<size_t>(c.B * c.T * c.C));
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t t = 0; t < c.T; ++t)
      for (int64_t ch = 0; ch < c.C; ++ch) y[(b * c.T + t) * c.C + ch] = direct_y(c, b, t, ch);
  return y;
}

// The final state's sums, scaled by e^{-pp} for the given pp (the kernel's),
// and the largest exponent, which the recurrence's pp tracks.
struct DirectState {
  Vec aa, bb, pp;
};

DirectState direct_state(const Case& c, const Vec& pp_scale) {
  const int64_t B = c.B, T = c.T, C = c.C;
  DirectState s;
  s.aa.assign(static_cast<size_t>(B * C), 0);
  s.bb.assign(static_cast<size_t>(B * C), 0);
  s.pp.assign(static_cast<size_t>(B * C), -1e38);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t ch = 0; ch < C; ++ch) {
      const double w = -std::exp(c.td[ch]);
      const double scale = pp_scale[(b * 3 + 2) * C + ch];
      double num = 0, den = 0, top = -std::numeric_limits<double>::infinity();
      for (int64_t i = 0; i < T; ++i) {
        double z = (T - 1 - i) * w + c.k[(b * T + i) * C + ch];
        top = std::max(top, z);
        double e = std::exp(z - scale);
        num += e * c.v[(b * T + i) * C + ch];
        den += e;
      }
      if (c.has_state()) {
        double z = c.state[(b * 3 + 2) * C + ch] + T * w;
        top = std::max(top, z);
        double e = std::exp(z - scale);
        num += e * c.state[(b * 3 + 0) * C + ch];
        den += e * c.state[(b * 3 + 1) * C + ch];
      }
      s.aa[b * C + ch] = num;
      s.bb[b * C + ch] = den;
      s.pp[b * C + ch] = T == 0 && !c.has_state() ? -1e38 : top;
    }
  return s;
}

Vec state_component(const Vec& state, int64_t B, int64_t C, int comp) {
  Vec out;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t ch = 0; ch < C; ++ch) out.push_back(state[(b * 3 + comp) * C + ch]);
  return out;
}

// Checks y and the final state of `f` against the direct formula.
void check_forward_against_direct(const Case& c, const Forward& f, double tol, const char* what) {
  Vec ref = direct_y_all(c);
  double err_y = relative_error(f.y, ref);
  DirectState s = direct_state(c, f.state);
  double err_aa = relative_error(state_component(f.state, c.B, c.C, 0), s.aa);
  double err_bb = relative_error(state_component(f.state, c.B, c.C, 1), s.bb);
  double err_pp = relative_error(state_component(f.state, c.B, c.C, 2), s.pp);
  std::printf("    %s: y %.2e, state aa %.2e bb %.2e pp %.2e\n", what, err_y, err_aa, err_bb, err_pp);
  CHECK(all_finite(f.y));
  CHECK(all_finite(f.state));
  CHECK_LE(err_y, tol);
  CHECK_LE(err_aa, tol);
  CHECK_LE(err_bb, tol);
  CHECK_LE(err_pp, tol);
}

void check_grads_close(const Backward& g, const Backward& ref, double tol, const char* what) {
  double e_td = relative_error(g.gtd, ref.gtd), e_tf = relative_error(g.gtf, ref.gtf);
  double e_k = relative_error(g.gk, ref.gk), e_v = relative_error(g.gv, ref.gv);
  double e_s = ref.gstate.empty() ? 0 : relative_error(g.gstate, ref.gstate);
  std::printf("    %s: gTimeDecay %.2e gTimeFirst %.2e gk %.2e gv %.2e gState %.2e\n", what, e_td, e_tf, e_k, e_v, e_s);
  for (const Vec* x : {&g.gtd, &g.gtf, &g.gk, &g.gv, &g.gstate}) CHECK(all_finite(*x));
  CHECK_LE(e_td, tol);
  CHECK_LE(e_tf, tol);
  CHECK_LE(e_k, tol);
  CHECK_LE(e_v, tol);
  CHECK_LE(e_s, tol);
  CHECK_EQ(g.gstate.size(), ref.gstate.size());
}

// The loss the gradients are of: Σ gy·y + Σ gState·state_out.
double loss_of(const Case& c, const Forward& f) {
  double l = 0;
  for (size_t i = 0; i < f.y.size(); ++i) l += c.gy[i] * f.y[i];
  if (c.has_gstate())
    for (size_t i = 0; i < f.state.size(); ++i) l += c.gstate[i] * f.state[i];
  return l;
}

// Central differences of `loss(case)` w.r.t. every element of case.*field.
template <typename Loss>
Vec finite_differences(const Case& c, Vec Case::*field, Loss loss) {
  Vec grad;
  Case work = c;
  for (size_t i = 0; i < (c.*field).size(); ++i) {
    double x = (c.*field)[i];
    double h = 1e-6 * std::max(1.0, std::fabs(x));
    (work.*field)[i] = x + h;
    double up = loss(work);
    (work.*field)[i] = x - h;
    double down = loss(work);
    (work.*field)[i] = x;
    grad.push_back((up - down) / (2 * h));
  }
  return grad;
}

void check_finite_differences(const Case& c, const char* what) {
  Backward g = run_backward(c, DType::Float64, kCpu);
  auto loss = [](const Case& x) { return loss_of(x, run_forward(x, DType::Float64, kCpu)); };
  struct Field {
    const char* name;
    Vec Case::*field;
    const Vec* analytic;
  };
  std::vector<Field> fields = {{"timeDecay", &Case::td, &g.gtd},
                               {"timeFirst", &Case::tf, &g.gtf},
                               {"k", &Case::k, &g.gk},
                               {"v", &Case::v, &g.gv}};
  if (c.has_state()) fields.push_back({"state", &Case::state, &g.gstate});
  for (const Field& f : fields) {
    Vec fd = finite_differences(c, f.field, loss);
    if (f.field == &Case::state) {
      for (int comp = 0; comp < 3; ++comp) {
        double err = relative_error(state_component(*f.analytic, c.B, c.C, comp), state_component(fd, c.B, c.C, comp));
        std::printf("    %s: d/dstate[%s] vs finite differences %.2e\n", what,
                    comp == 0   ? "aa"
                    : comp == 1 ? "bb"
                                : "pp",
                    err);
        CHECK_LE(err, 1e-6);
      }
    } else {
      double err = relative_error(*f.analytic, fd);
      std::printf("    %s: d/d%s vs finite differences %.2e\n", what, f.name, err);
      CHECK_LE(err, 1e-6);
    }
  }
}

}  // namespace

// ---- forward values ------------------------------------------------------------------

TEST(forward_float64_matches_direct_formula) {
  for (bool state : {false, true}) {
    Case c = random_case(2, 150, 37, state, false, 11 + state);  // 150 steps: three checkpoint chunks
    check_forward_against_direct(c, run_forward(c, DType::Float64, kCpu), 1e-12,
                                 state ? "float64 with state" : "float64");
  }
}

TEST(forward_low_precision_meets_bars) {
  struct Bar {
    DType dtype;
    double tol;
  };
  for (Bar bar : {Bar{DType::Float32, 1e-5}, Bar{DType::BFloat16, 1e-2}, Bar{DType::Float16, 1e-2}}) {
    for (bool state : {false, true}) {
      Case c = rounded(random_case(2, 100, 37, state, false, 21 + state), bar.dtype);
      std::string what = std::string(dtype_name(bar.dtype)) + (state ? " with state" : "");
      check_forward_against_direct(c, run_forward(c, bar.dtype, kCpu), bar.tol, what.c_str());
    }
  }
}

TEST(step_repeated_equals_forward) {
  // Each step stores its state (folding the exponent's low part into aa, bb:
  // one rounding), so equal to rounding, not bit for bit.
  struct Bar {
    DType dtype;
    double tol;
  };
  for (Bar bar : {Bar{DType::Float64, 1e-14}, Bar{DType::Float32, 1e-6}, Bar{DType::BFloat16, 1e-2}}) {
    const DType dtype = bar.dtype;
    Case c = rounded(random_case(3, 20, 70, true, false, 31), dtype);
    Forward whole = run_forward(c, dtype, kCpu);
    DType acc = acc_of(dtype);
    Vec state = c.state;
    Vec ys;
    for (int64_t t = 0; t < c.T; ++t) {
      ops::Wkv4StepArgs args;
      args.time_decay = make(c.td, {c.C}, acc, kCpu);
      args.time_first = make(c.tf, {c.C}, acc, kCpu);
      args.k = make(slice_t(c.k, c.B, c.T, c.C, t, t + 1), {c.B, c.C}, dtype, kCpu);
      args.v = make(slice_t(c.v, c.B, c.T, c.C, t, t + 1), {c.B, c.C}, dtype, kCpu);
      args.state = make(state, {c.B, 3, c.C}, acc, kCpu);
      ops::Wkv4StepResult out = ops::wkv4_step(args);
      Vec y = read(out.y);
      state = read(out.state);
      ys = t == 0 ? y : concat_t(ys, t, y, 1, c.B, c.C);
    }
    double e_y = relative_error(ys, whole.y), e_s = relative_error(state, whole.state);
    std::printf("    %s: step vs forward y %.2e state %.2e\n", dtype_name(dtype), e_y, e_s);
    CHECK_LE(e_y, bar.tol);
    CHECK_LE(e_s, bar.tol);
  }
}

// ---- gradients -------------------------------------------------------------------

TEST(gradients_match_finite_differences_float64) {
  // 70 steps cross a checkpoint boundary of the backward pass.
  check_finite_differences(random_case(2, 70, 2, true, true, 41), "state + gState");
  check_finite_differences(random_case(2, 9, 3, false, false, 42), "no state");
  check_finite_differences(random_case(1, 5, 4, true, false, 43), "state, no gState");
  check_finite_differences(random_case(1, 6, 3, false, true, 44), "gState, no state");
}

// An independent check of the y-part of the gradient: finite differences of
// the direct formula (no recurrence involved).
TEST(gradients_match_finite_differences_of_direct_formula) {
  Case c = random_case(2, 40, 3, true, false, 51);
  Backward g = run_backward(c, DType::Float64, kCpu);
  auto loss = [](const Case& x) {
    Vec y = direct_y_all(x);
    double l = 0;
    for (size_t i = 0; i < y.size(); ++i) l += x.gy[i] * y[i];
    return l;
  };
  double e_td = relative_error(g.gtd, finite_differences(c, &Case::td, loss));
  double e_tf = relative_error(g.gtf, finite_differences(c, &Case::tf, loss));
  double e_k = relative_error(g.gk, finite_differences(c, &Case::k, loss));
  double e_v = relative_error(g.gv, finite_differences(c, &Case::v, loss));
  // The direct formula sees the state only through e^{pp}·aa and e^{pp}·bb.
  Vec fd_state = finite_differences(c, &Case::state, loss);
  double e_aa = relative_error(state_component(g.gstate, c.B, c.C, 0), state_component(fd_state, c.B, c.C, 0));
  double e_bb = relative_error(state_component(g.gstate, c.B, c.C, 1), state_component(fd_state, c.B, c.C, 1));
  double e_pp = relative_error(state_component(g.gstate, c.B, c.C, 2), state_component(fd_state, c.B, c.C, 2));
  std::printf("    vs direct formula: td %.2e tf %.2e k %.2e v %.2e aa %.2e bb %.2e pp %.2e\n", e_td, e_tf, e_k, e_v,
              e_aa, e_bb, e_pp);
  for (double e : {e_td, e_tf, e_k, e_v, e_aa, e_bb, e_pp}) CHECK_LE(e, 1e-6);
}

TEST(low_precision_gradients_meet_bars) {
  struct Bar {
    DType dtype;
    double tol;
  };
  for (Bar bar : {Bar{DType::Float32, 1e-4}, Bar{DType::BFloat16, 1e-2}, Bar{DType::Float16, 1e-2}}) {
    for (bool state : {false, true}) {
      Case c = rounded(random_case(2, 150, 37, state, state, 61 + state), bar.dtype);
      std::string what = std::string(dtype_name(bar.dtype)) + (state ? " with state and gState" : "");
      check_grads_close(run_backward(c, bar.dtype, kCpu), run_backward(c, DType::Float64, kCpu), bar.tol, what.c_str());
    }
  }
}

// forward(first part) then forward(rest, state) == forward(all), and the
// backward of the rest, seeding the backward of the first part with its gState,
// gives the gradients of the whole.
TEST(chained_chunks_equal_whole_sequence) {
  struct Bar {
    DType dtype;
    double tol;
  };
  for (Bar bar : {Bar{DType::Float64, 1e-12}, Bar{DType::Float32, 1e-6}}) {
    for (bool state : {false, true}) {
      const int64_t T1 = 77;
      Case whole = rounded(random_case(2, 200, 37, state, true, 71 + state), bar.dtype);
      Case first = whole, rest = whole;
      first.T = T1;
      rest.T = whole.T - T1;
      first.k = slice_t(whole.k, whole.B, whole.T, whole.C, 0, T1);
      first.v = slice_t(whole.v, whole.B, whole.T, whole.C, 0, T1);
      first.gy = slice_t(whole.gy, whole.B, whole.T, whole.C, 0, T1);
      rest.k = slice_t(whole.k, whole.B, whole.T, whole.C, T1, whole.T);
      rest.v = slice_t(whole.v, whole.B, whole.T, whole.C, T1, whole.T);
      rest.gy = slice_t(whole.gy, whole.B, whole.T, whole.C, T1, whole.T);

      Forward f_whole = run_forward(whole, bar.dtype, kCpu);
      Forward f_first = run_forward(first, bar.dtype, kCpu);
      rest.state = f_first.state;
      Forward f_rest = run_forward(rest, bar.dtype, kCpu);
      // The state passed on represents the same sums (up to one rounding).
      double e_y = relative_error(concat_t(f_first.y, T1, f_rest.y, rest.T, whole.B, whole.C), f_whole.y);
      double e_s = relative_error(f_rest.state, f_whole.state);
      std::printf("    %s%s: chained vs whole y %.2e state %.2e\n", dtype_name(bar.dtype), state ? " with state" : "",
                  e_y, e_s);
      CHECK_LE(e_y, bar.tol);
      CHECK_LE(e_s, bar.tol);

      Backward g_whole = run_backward(whole, bar.dtype, kCpu);
      Backward g_rest = run_backward(rest, bar.dtype, kCpu);
      first.gstate = g_rest.gstate;
      Backward g_first = run_backward(first, bar.dtype, kCpu);
      Backward chained{add(g_first.gtd, g_rest.gtd), add(g_first.gtf, g_rest.gtf),
                       concat_t(g_first.gk, T1, g_rest.gk, rest.T, whole.B, whole.C),
                       concat_t(g_first.gv, T1, g_rest.gv, rest.T, whole.B, whole.C), g_first.gstate};
      std::string what = std::string(dtype_name(bar.dtype)) + (state ? " with state" : "") + ", chained vs whole";
      check_grads_close(chained, g_whole, bar.tol, what.c_str());
    }
  }
}

// ---- extreme inputs --------------------------------------------------------------

TEST(extreme_k_stays_finite_and_accurate) {
  for (bool state : {false, true}) {
    Case c = random_case(2, 100, 37, state, state, 81 + state);
    std::mt19937_64 rng(5);
    std::uniform_real_distribution<double> k_dist(-1000, 1000), v_dist(-1, 1);
    for (double& x : c.k) x = k_dist(rng);
    for (double& x : c.v) x = v_dist(rng);
    Case c32 = rounded(c, DType::Float32);
    check_forward_against_direct(c, run_forward(c, DType::Float64, kCpu), 1e-12, "float64, k in ±1000");
    check_forward_against_direct(c32, run_forward(c32, DType::Float32, kCpu), 1e-5, "float32, k in ±1000");
    Backward g64 = run_backward(c32, DType::Float64, kCpu);
    check_grads_close(run_backward(c32, DType::Float32, kCpu), g64, 1e-4, "float32 gradients, k in ±1000");
    Case c16 = rounded(c, DType::BFloat16);
    check_forward_against_direct(c16, run_forward(c16, DType::BFloat16, kCpu), 1e-2, "bfloat16, k in ±1000");
  }
  // T = 1 with and without a state.
  for (bool state : {false, true}) {
    Case c = random_case(3, 1, 37, state, state, 91 + state);
    check_forward_against_direct(c, run_forward(c, DType::Float64, kCpu), 1e-12, "float64, T = 1");
    Case c32 = rounded(c, DType::Float32);
    check_forward_against_direct(c32, run_forward(c32, DType::Float32, kCpu), 1e-5, "float32, T = 1");
    check_grads_close(run_backward(c32, DType::Float32, kCpu), run_backward(c32, DType::Float64, kCpu), 1e-4,
                      "float32 gradients, T = 1");
  }
  check_finite_differences(random_case(2, 1, 3, true, true, 95), "T = 1");
}

TEST(extreme_time_decay_stays_finite_and_accurate) {
  // w from -9e-14 (timeDecay -30: no decay at float precision, which the
  // compensated exponent still tracks) to -exp(100) (clamped at -1e30:
  // everything forgotten at once).
  Case c = random_case(2, 60, 6, true, true, 131);
  c.td = {-30, -5, 0, 5, 30, 100};
  Case c32 = rounded(c, DType::Float32);
  check_forward_against_direct(c, run_forward(c, DType::Float64, kCpu), 1e-12, "float64, timeDecay -30..100");
  check_forward_against_direct(c32, run_forward(c32, DType::Float32, kCpu), 1e-5, "float32, timeDecay -30..100");
  check_grads_close(run_backward(c32, DType::Float32, kCpu), run_backward(c32, DType::Float64, kCpu), 1e-4,
                    "float32 gradients, timeDecay -30..100");
}

TEST(long_sequence_small_batch) {
  // T = 100 000, B·C = 3: the float32 result against float64 (itself checked
  // against the direct formula at sampled steps) and all finite.
  Case c = rounded(random_case(1, 100000, 3, true, true, 101), DType::Float32);
  Forward f64 = run_forward(c, DType::Float64, kCpu);
  Forward f32 = run_forward(c, DType::Float32, kCpu);
  CHECK(all_finite(f32.y));
  double worst = 0;
  for (int64_t t : {int64_t(0), int64_t(1), int64_t(63), int64_t(64), int64_t(5000), int64_t(77777), int64_t(99999)}) {
    for (int64_t ch = 0; ch < 3; ++ch) {
      double ref = direct_y(c, 0, t, ch);
      worst = std::max(worst, std::fabs(f64.y[t * 3 + ch] - ref) / std::max(1.0, std::fabs(ref)));
    }
  }
  double e_y = relative_error(f32.y, f64.y), e_state = relative_error(f32.state, f64.state);
  std::printf("    float64 vs direct formula at sampled steps %.2e; float32 vs float64: y %.2e state %.2e\n", worst,
              e_y, e_state);
  CHECK_LE(worst, 1e-12);
  CHECK_LE(e_y, 1e-5);
  CHECK_LE(e_state, 1e-5);
  check_grads_close(run_backward(c, DType::Float32, kCpu), run_backward(c, DType::Float64, kCpu), 1e-4,
                    "float32 gradients, T = 100000");
}

TEST(empty_sizes) {
  // T = 0: y is empty, the state passes through, gState too.
  Case c = random_case(2, 0, 5, true, true, 111);
  Forward f = run_forward(c, DType::Float32, kCpu);
  CHECK(f.y.empty());
  CHECK(f.state == round_to(c.state, DType::Float32));
  Backward g = run_backward(c, DType::Float32, kCpu);
  CHECK(g.gk.empty());
  CHECK(g.gstate == round_to(c.gstate, DType::Float32));
  CHECK(g.gtd == Vec(5, 0.0));
  CHECK(g.gtf == Vec(5, 0.0));
  // T = 0 without a state: the empty state.
  Case e = random_case(1, 0, 2, false, false, 112);
  Forward fe = run_forward(e, DType::Float64, kCpu);
  CHECK(fe.state == (Vec{0, 0, 0, 0, -1e38, -1e38}));
  // B = 0 and C = 0.
  Case b0 = random_case(0, 4, 3, false, false, 113);
  CHECK(run_forward(b0, DType::Float32, kCpu).y.empty());
  CHECK(run_backward(b0, DType::Float32, kCpu).gtd == Vec(3, 0.0));
  Case c0 = random_case(2, 4, 0, true, true, 114);
  CHECK(run_backward(c0, DType::Float32, kCpu).gk.empty());
}

// ---- validation --------------------------------------------------------------------

TEST(bad_arguments_throw_before_queueing) {
  auto t = [](const Shape& shape, DType dtype) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return make(Vec(static_cast<size_t>(n), 0.5), shape, dtype, kCpu);
  };
  const DType f32 = DType::Float32;
  auto good = [&] {
    ops::Wkv4ForwardArgs a;
    a.time_decay = t({64}, f32);
    a.time_first = t({64}, f32);
    a.k = t({2, 16, 64}, f32);
    a.v = t({2, 16, 64}, f32);
    a.state = t({2, 3, 64}, f32);
    return a;
  };
  ops::wkv4_forward(good());  // the baseline is valid
  const ErrorKind type = ErrorKind::Type, range = ErrorKind::Range;
  {
    auto a = good();
    a.k = t({2, 16, 32}, f32);
    CHECK_THROWS_KIND(ops::wkv4_forward(a), range,
                      "wkv4.forward: k must have shape [B,T,C] = [2,16,64] like v, got [2,16,32]");
  }
  {
    auto a = good();
    a.v = t({2, 64}, f32);
    CHECK_THROWS_KIND(ops::wkv4_forward(a), range, "wkv4.forward: v must have shape [B,T,C], got [2,64]");
  }
  {
    auto a = good();
    a.time_decay = t({63}, f32);
    CHECK_THROWS_KIND(ops::wkv4_forward(a), range, "wkv4.forward: timeDecay must have shape [C] = [64]");
  }
  {
    auto a = good();
    a.time_first = t({1, 64}, f32);
    CHECK_THROWS_KIND(ops::wkv4_forward(a), range, "wkv4.forward: timeFirst must have shape [C] = [64]");
  }
  {
    auto a = good();
    a.state = t({2, 2, 64}, f32);
    CHECK_THROWS_KIND(ops::wkv4_forward(a), range, "wkv4.forward: state must have shape [B,3,C] = [2,3,64]");
  }
  {
    auto a = good();
    a.k = t({2, 16, 64}, DType::Int32);
    a.v = t({2, 16, 64}, DType::Int32);
    CHECK_THROWS_KIND(ops::wkv4_forward(a), type, "wkv4.forward: k must have dtype float32, bfloat16");
  }
  {
    auto a = good();
    a.v = t({2, 16, 64}, DType::BFloat16);
    CHECK_THROWS_KIND(ops::wkv4_forward(a), type, "wkv4.forward: v must have dtype float32 like k, got bfloat16");
  }
  {
    auto a = good();
    a.time_decay = t({64}, DType::Float64);
    CHECK_THROWS_KIND(ops::wkv4_forward(a), type, "wkv4.forward: timeDecay must have dtype float32");
  }
  {
    auto a = good();
    a.k = t({2, 16, 64}, DType::BFloat16);
    a.v = t({2, 16, 64}, DType::BFloat16);
    a.time_first = t({64}, DType::BFloat16);
    CHECK_THROWS_KIND(ops::wkv4_forward(a), type, "wkv4.forward: timeFirst must have dtype float32");
  }
  {
    auto a = good();
    a.k = t({2, 16, 64}, DType::Float64);
    a.v = t({2, 16, 64}, DType::Float64);
    CHECK_THROWS_KIND(ops::wkv4_forward(a), type, "wkv4.forward: timeDecay must have dtype float64");
  }
  {
    auto a = good();
    a.state = t({2, 3, 64}, DType::Float16);
    CHECK_THROWS_KIND(ops::wkv4_forward(a), type, "wkv4.forward: state must have dtype float32");
  }
  {
    auto a = good();
    a.k = Tensor{};
    CHECK_THROWS_KIND(ops::wkv4_forward(a), type, "wkv4.forward: k must be a tensor");
  }
  // backward: y, gy, gState
  auto good_backward = [&] {
    auto f = good();
    ops::Wkv4BackwardArgs a;
    a.time_decay = f.time_decay;
    a.time_first = f.time_first;
    a.k = f.k;
    a.v = f.v;
    a.state = f.state;
    a.y = t({2, 16, 64}, f32);
    a.gy = t({2, 16, 64}, f32);
    a.gstate = t({2, 3, 64}, f32);
    return a;
  };
  ops::wkv4_backward(good_backward());
  {
    auto a = good_backward();
    a.gy = t({2, 15, 64}, f32);
    CHECK_THROWS_KIND(ops::wkv4_backward(a), range,
                      "wkv4.backward: gy must have shape [B,T,C] = [2,16,64] like v, got [2,15,64]");
  }
  {
    auto a = good_backward();
    a.y = t({2, 16, 64}, DType::Float16);
    CHECK_THROWS_KIND(ops::wkv4_backward(a), type, "wkv4.backward: y must have dtype float32 like k");
  }
  {
    auto a = good_backward();
    a.gstate = t({3, 3, 64}, f32);
    CHECK_THROWS_KIND(ops::wkv4_backward(a), range, "wkv4.backward: gState must have shape [B,3,C] = [2,3,64]");
  }
  {
    auto a = good_backward();
    a.gstate = t({2, 3, 64}, DType::BFloat16);
    CHECK_THROWS_KIND(ops::wkv4_backward(a), type, "wkv4.backward: gState must have dtype float32");
  }
  {
    auto a = good_backward();
    a.k = t({2, 16, 65}, f32);
    CHECK_THROWS_KIND(ops::wkv4_backward(a), range, "wkv4.backward: k must have shape [B,T,C] = [2,16,64] like v");
  }
  // step: [B,C] tokens, state required
  auto good_step = [&] {
    ops::Wkv4StepArgs a;
    a.time_decay = t({64}, f32);
    a.time_first = t({64}, f32);
    a.k = t({2, 64}, f32);
    a.v = t({2, 64}, f32);
    a.state = t({2, 3, 64}, f32);
    return a;
  };
  ops::wkv4_step(good_step());
  {
    auto a = good_step();
    a.k = t({2, 1, 64}, f32);
    CHECK_THROWS_KIND(ops::wkv4_step(a), range, "wkv4.step: k must have shape [B,C] = [2,64] like v, got [2,1,64]");
  }
  {
    auto a = good_step();
    a.state = Tensor{};
    CHECK_THROWS_KIND(ops::wkv4_step(a), type, "wkv4.step: state must be a tensor");
  }
  {
    auto a = good_step();
    a.state = t({1, 3, 64}, f32);
    CHECK_THROWS_KIND(ops::wkv4_step(a), range, "wkv4.step: state must have shape [B,3,C] = [2,3,64]");
  }
  // Devices.
  if (cuda_usable()) {
    auto a = good();
    a.v = ops::to_device(a.v, kCuda);
    CHECK_THROWS_KIND(ops::wkv4_forward(a), type, "wkv4.forward: v must be on the same device as k (cpu)");
  } else {
    auto a = good();
    a.k = Tensor{};
    CHECK_THROWS_KIND(ops::wkv4_forward(a), type, "k must be a tensor");
    std::printf("    (cross-device cases skipped: %s)\n", cuda_info().reason.c_str());
  }
}

// ---- chunks of T in parallel (CUDA version 2) ----------------------------------------
//
// The algorithm of the chunked CUDA forward, run here on the CPU with the same
// math functions in float: summaries of chunks from the empty state, a scan
// of wkv4_merge over them, a replay of each chunk from its start. It must
// agree with the serial recurrence (and so with the direct formula).
Forward chunked_emulation(const Case& c, int64_t len) {
  const int64_t B = c.B, T = c.T, C = c.C, chunks = (T + len - 1) / len;
  Forward out;
  out.y.assign(static_cast<size_t>(B * T * C), 0);
  out.state.assign(static_cast<size_t>(B * 3 * C), 0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t ch = 0; ch < C; ++ch) {
      const Wkv4Decay<float> w = wkv4_decay<float>(static_cast<float>(c.td[ch]));
      const float u = static_cast<float>(c.tf[ch]);
      auto kk = [&](int64_t t) { return static_cast<float>(c.k[(b * T + t) * C + ch]); };
      auto vv = [&](int64_t t) { return static_cast<float>(c.v[(b * T + t) * C + ch]); };
      struct S {
        float aa, bb, pp, pl;
      };
      std::vector<S> summary(static_cast<size_t>(chunks)), start(static_cast<size_t>(chunks));
      for (int64_t j = 0; j + 1 < chunks; ++j) {
        S s{0, 0, wkv4_empty_pp<float>(), 0};
        for (int64_t t = j * len; t < (j + 1) * len; ++t) wkv4_update<float>(s.aa, s.bb, s.pp, s.pl, w, kk(t), vv(t));
        summary[j] = s;
      }
      S s{0, 0, wkv4_empty_pp<float>(), 0};
      if (c.has_state()) {
        s.aa = static_cast<float>(c.state[(b * 3 + 0) * C + ch]);
        s.bb = static_cast<float>(c.state[(b * 3 + 1) * C + ch]);
        s.pp = static_cast<float>(c.state[(b * 3 + 2) * C + ch]);
      }
      for (int64_t j = 0; j < chunks; ++j) {
        start[j] = s;
        if (j + 1 < chunks) {
          const S& m = summary[j];
          wkv4_merge<float>(s.aa, s.bb, s.pp, s.pl, w, static_cast<float>(len), m.aa, m.bb, m.pp, m.pl);
        }
      }
      for (int64_t j = 0; j < chunks; ++j) {
        S x = start[j];
        for (int64_t t = j * len; t < std::min(T, (j + 1) * len); ++t) {
          out.y[(b * T + t) * C + ch] = wkv4_output<float>(x.aa, x.bb, x.pp, x.pl, u, kk(t), vv(t));
          wkv4_update<float>(x.aa, x.bb, x.pp, x.pl, w, kk(t), vv(t));
        }
        if (j + 1 == chunks) {
          Wkv4Folded<float> f = wkv4_fold<float>(x.pp, x.pl);
          out.state[(b * 3 + 0) * C + ch] = x.aa * f.scale;
          out.state[(b * 3 + 1) * C + ch] = x.bb * f.scale;
          out.state[(b * 3 + 2) * C + ch] = f.pp;
        }
      }
    }
  return out;
}

TEST(chunked_scan_matches_serial_recurrence) {
  struct Item {
    const char* name;
    Case c;
    int64_t len;
  };
  std::vector<Item> items;
  items.push_back(
      {"B=1 T=100000 C=3, L=512", rounded(random_case(1, 100000, 3, true, false, 121), DType::Float32), 512});
  items.push_back({"B=2 T=1000 C=5, L=32 (partial last chunk)",
                   rounded(random_case(2, 1000, 5, false, false, 122), DType::Float32), 32});
  {
    Case x = random_case(2, 1024, 4, true, false, 123);
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> k_dist(-1000, 1000), v_dist(-1, 1);
    for (double& e : x.k) e = k_dist(rng);
    for (double& e : x.v) e = v_dist(rng);
    items.push_back({"B=2 T=1024 C=4 k in ±1000, L=64", rounded(x, DType::Float32), 64});
  }
  for (const Item& it : items) {
    Forward chunked = chunked_emulation(it.c, it.len);
    Forward serial = run_forward(it.c, DType::Float32, kCpu);
    Forward exact = run_forward(it.c, DType::Float64, kCpu);
    double e_y = relative_error(chunked.y, exact.y), e_s = relative_error(chunked.state, exact.state);
    double s_y = relative_error(serial.y, exact.y);
    std::printf("    %s: chunked vs float64 y %.2e state %.2e (serial float32 y %.2e)\n", it.name, e_y, e_s, s_y);
    CHECK(all_finite(chunked.y));
    CHECK_LE(e_y, 1e-5);
    CHECK_LE(e_s, 1e-5);
  }
}

// ---- CUDA against the CPU ----------------------------------------------------------

TEST(cuda_matches_cpu) {
  if (!cuda_usable()) {
    std::printf("    skipped: CUDA not available (%s)\n", cuda_info().reason.c_str());
    return;
  }
  struct Bar {
    DType dtype;
    double fwd, grad;
  };
  std::vector<std::pair<std::string, Case>> cases;
  cases.push_back({"B=2 T=150 C=37", random_case(2, 150, 37, false, false, 201)});
  cases.push_back({"B=2 T=150 C=37 state", random_case(2, 150, 37, true, true, 202)});
  cases.push_back({"B=3 T=1 C=64 state", random_case(3, 1, 64, true, true, 203)});
  cases.push_back({"B=1 T=100000 C=3 state", random_case(1, 100000, 3, true, true, 204)});
  cases.push_back({"B=4 T=256 C=1000", random_case(4, 256, 1000, true, true, 205)});
  {
    Case x = random_case(2, 100, 37, true, true, 206);
    std::mt19937_64 rng(6);
    std::uniform_real_distribution<double> k_dist(-1000, 1000), v_dist(-1, 1);
    for (double& e : x.k) e = k_dist(rng);
    for (double& e : x.v) e = v_dist(rng);
    cases.push_back({"k in ±1000", x});
  }
  cases.push_back({"T=0 state", random_case(2, 0, 5, true, true, 207)});
  {
    Case x = random_case(2, 60, 6, true, true, 209);
    x.td = {-30, -5, 0, 5, 30, 100};
    cases.push_back({"timeDecay -30..100", x});
  }
  for (Bar bar : {Bar{DType::Float32, 1e-5, 1e-4}, Bar{DType::BFloat16, 1e-2, 1e-2}, Bar{DType::Float16, 1e-2, 1e-2}}) {
    for (auto& [name, raw] : cases) {
      Case c = rounded(raw, bar.dtype);
      std::string what = name + " " + dtype_name(bar.dtype);
      Forward cpu = run_forward(c, bar.dtype, kCpu), gpu = run_forward(c, bar.dtype, kCuda);
      double e_y = relative_error(gpu.y, cpu.y), e_s = relative_error(gpu.state, cpu.state);
      std::printf("    %s forward: y %.2e state %.2e\n", what.c_str(), e_y, e_s);
      CHECK(all_finite(gpu.y));
      CHECK_LE(e_y, bar.fwd);
      CHECK_LE(e_s, bar.fwd);
      check_grads_close(run_backward(c, bar.dtype, kCuda), run_backward(c, bar.dtype, kCpu), bar.grad,
                        (what + " backward").c_str());
    }
  }
  // Both forward versions on the same inputs, whatever the default would pick.
  for (auto& [name, raw] : cases) {
    Case c = rounded(raw, DType::Float32);
    Forward cpu = run_forward(c, DType::Float32, kCpu);
    for (auto variant : {kernels::KernelVariant::Serial, kernels::KernelVariant::Chunked}) {
      kernels::ScopedKernelVariant forced(kernels::KernelFamily::Wkv4Forward, variant);
      Forward gpu = run_forward(c, DType::Float32, kCuda);
      double e_y = relative_error(gpu.y, cpu.y), e_s = relative_error(gpu.state, cpu.state);
      std::printf("    %s forward version %s: y %.2e state %.2e\n", name.c_str(),
                  variant == kernels::KernelVariant::Serial ? "serial" : "chunked", e_y, e_s);
      CHECK_LE(e_y, 1e-5);
      CHECK_LE(e_s, 1e-5);
    }
  }
  // step on CUDA == step on the CPU
  Case c = random_case(4, 1, 300, true, false, 208);
  ops::Wkv4StepArgs args[2];
  Vec y[2], s[2];
  for (int d = 0; d < 2; ++d) {
    const Device& dev = d == 0 ? kCpu : kCuda;
    args[d].time_decay = make(c.td, {c.C}, DType::Float32, dev);
    args[d].time_first = make(c.tf, {c.C}, DType::Float32, dev);
    args[d].k = make(c.k, {c.B, c.C}, DType::Float32, dev);
    args[d].v = make(c.v, {c.B, c.C}, DType::Float32, dev);
    args[d].state = make(c.state, {c.B, 3, c.C}, DType::Float32, dev);
    ops::Wkv4StepResult out = ops::wkv4_step(args[d]);
    y[d] = read(out.y);
    s[d] = read(out.state);
  }
  CHECK_LE(relative_error(y[1], y[0]), 1e-5);
  CHECK_LE(relative_error(s[1], s[0]), 1e-5);
}

LMK_TEST_MAIN()
