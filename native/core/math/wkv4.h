// RWKV-4 WKV: one step of the stable recurrence and its exact derivative,
// shared by the CPU and CUDA kernels (docs/kernels.md#wkv4). `Acc` is the
// accumulation type, compute_t of the storage type (math/compute_type.h):
// float for float32/bfloat16/float16 storage, double for float64.
//
// State (aa, bb, pp): numerator e^{pp}·aa and denominator e^{pp}·bb of
//   y_t = ( Σ_{i<t} e^{(t-1-i)w + k_i} v_i + e^{u + k_t} v_t )
//       / ( Σ_{i<t} e^{(t-1-i)w + k_i}       + e^{u + k_t}     )
// with w = -exp(timeDecay) < 0, u = timeFirst; the empty state is (0, 0, -1e38).
//
//   output:  p = max(pp, u+k);  y = (e^{pp-p}·aa + e^{u+k-p}·v) / (e^{pp-p}·bb + e^{u+k-p})
//   update:  p' = max(pp+w, k); aa' = e^{pp+w-p'}·aa + e^{k-p'}·v;
//            bb' = e^{pp+w-p'}·bb + e^{k-p'};  pp' = p'
//
// Two refinements over the textbook kernel, both about the exponents, which
// reach |k| ~ 1000 in the extreme inputs while a float's ulp there is 6e-5
// (an absolute error in an exponent is a relative error of its term):
//  - Inside a call, pp is carried as an unevaluated sum pp + pl (pl: the
//    rounding errors of the repeated pp + w, caught by Fast2Sum), and w as
//    w_hi + w_lo (from -exp(timeDecay) in double), so the decay of a term kept
//    for n steps is not off by n roundings. Exponent differences are formed
//    as (pp - k) first (exact when they are close, Sterbenz), then the small
//    parts are added. At the end the stored pp is pp + pl rounded, and aa, bb
//    absorb the remainder (wkv4_fold): the same sums.
//  - One of each pair of exponentials is e^0 = 1, so each half of a step costs
//    one exponential: e^{-|d|} for the smaller argument.
#pragma once
#include <cmath>
#include <cstdint>

#include "math/host_device.h"
#include "math/vector_exp.h"

namespace lmk {

// ---- the recurrence -------------------------------------------------------------

// pp of the empty state: e^{pp} is 0 for every practical purpose, yet pp + w
// stays finite in float.
template <typename Acc>
LMK_HOST_DEVICE Acc wkv4_empty_pp() {
  return static_cast<Acc>(-1e38);
}

// w = -exp(timeDecay) as hi + lo (computed in double; lo = 0 for double).
// Always negative; clamped at -1e30 (a decay that strong forgets everything
// at every step either way) so that no Inf enters the arithmetic.
template <typename Acc>
struct Wkv4Decay {
  Acc hi, lo;
  LMK_HOST_DEVICE double value() const { return static_cast<double>(hi) + static_cast<double>(lo); }
};

template <typename Acc>
LMK_HOST_DEVICE Wkv4Decay<Acc> wkv4_decay(Acc time_decay) {
#if defined(__CUDA_ARCH__)
  double w = -::exp(static_cast<double>(time_decay));
#else
  double w = -std::exp(static_cast<double>(time_decay));
#endif
  w = w < -1e30 ? -1e30 : w;
  Wkv4Decay<Acc> d;
  d.hi = static_cast<Acc>(w);
  d.lo = static_cast<Acc>(w - static_cast<double>(d.hi));
  return d;
}

// The larger of two exponents, from d = a - b: (e^{a-max}, e^{b-max}), one of
// them exactly 1. `a_wins` (d >= 0) is the branch the max took.
template <typename Acc>
struct Wkv4Pair {
  Acc e_a, e_b;
  bool a_wins;
};

template <typename Acc>
LMK_HOST_DEVICE Acc wkv4_neg_abs(Acc d) {
#if defined(__CUDA_ARCH__)
  return -fabs(d);
#else
  return -std::fabs(d);
#endif
}

template <typename Acc>
LMK_HOST_DEVICE Wkv4Pair<Acc> wkv4_pair(Acc d) {
  bool a_wins = d >= static_cast<Acc>(0);
  Acc e = vector_exp_nonpositive(wkv4_neg_abs<Acc>(d));
  Wkv4Pair<Acc> out;
  out.e_a = a_wins ? static_cast<Acc>(1) : e;
  out.e_b = a_wins ? e : static_cast<Acc>(1);
  out.a_wins = a_wins;
  return out;
}

// (pp + pl) - (u + k): the state's exponent minus the current token's.
template <typename Acc>
LMK_HOST_DEVICE Acc wkv4_output_gap(Acc pp, Acc pl, Acc u, Acc k) {
  return ((pp - k) - u) + pl;
}

// pp + w as s + lo, and the gap (pp + pl + w) - k. err is the rounding error
// of s = pp + w_hi (Fast2Sum: exact when |pp| >= |w_hi|, the case that
// matters — a large exponent decaying; otherwise both are small and so is
// the error left).
template <typename Acc>
struct Wkv4Decayed {
  Acc s, lo, gap;
};

template <typename Acc>
LMK_HOST_DEVICE Wkv4Decayed<Acc> wkv4_decayed(Acc pp, Acc pl, Wkv4Decay<Acc> w, Acc k) {
  Wkv4Decayed<Acc> r;
  r.s = pp + w.hi;
  Acc err = (pp - r.s) + w.hi;
  r.lo = pl + (w.lo + err);
  r.gap = (r.s - k) + r.lo;
  return r;
}

// y_t from the state (aa, bb, pp + pl) before step t.
template <typename Acc>
LMK_HOST_DEVICE Acc wkv4_output(Acc aa, Acc bb, Acc pp, Acc pl, Acc u, Acc k, Acc v) {
  Wkv4Pair<Acc> e = wkv4_pair<Acc>(wkv4_output_gap<Acc>(pp, pl, u, k));
  return (e.e_a * aa + e.e_b * v) / (e.e_a * bb + e.e_b);
}

// The state after step t from the state before it.
template <typename Acc>
LMK_HOST_DEVICE void wkv4_update(Acc& aa, Acc& bb, Acc& pp, Acc& pl, Wkv4Decay<Acc> w, Acc k, Acc v) {
  Wkv4Decayed<Acc> ww = wkv4_decayed<Acc>(pp, pl, w, k);
  Wkv4Pair<Acc> e = wkv4_pair<Acc>(ww.gap);
  aa = e.e_a * aa + e.e_b * v;
  bb = e.e_a * bb + e.e_b;
  pp = e.a_wins ? ww.s : k;
  pl = e.a_wins ? ww.lo : static_cast<Acc>(0);
}

// The stored state from the carried one (aa, bb, pp + pl): pp_out = pp + pl
// rounded (the nearest value to the exact exponent, so the stored
// representation does not depend on the rounding path), and aa, bb times
// `scale` = e^{(pp + pl) - pp_out}: the same sums.
template <typename Acc>
struct Wkv4Folded {
  Acc pp, scale;
};

template <typename Acc>
LMK_HOST_DEVICE Wkv4Folded<Acc> wkv4_fold(Acc pp, Acc pl) {
  Wkv4Folded<Acc> f;
  f.pp = pp + pl;
  f.scale = vector_exp((pp - f.pp) + pl);
  return f;
}

// ---- chunks of a sequence in parallel ---------------------------------------------
//
// The update is linear in the represented sums (A' = e^w A + e^k v), so a run
// of `steps` steps from a state S equals S decayed by e^{steps·w} plus the
// same run from the empty state (its "summary"). wkv4_merge forms that sum
// in the carried representation. `steps` must be a power of two, so
// steps·w_hi and steps·w_lo are exact.
template <typename Acc>
LMK_HOST_DEVICE void wkv4_merge(Acc& aa, Acc& bb, Acc& pp, Acc& pl, Wkv4Decay<Acc> w, Acc steps, Acc aa2, Acc bb2,
                                Acc pp2, Acc pl2) {
  const Acc decay_hi = steps * w.hi, decay_lo = steps * w.lo;
  // s + err = pp + decay_hi exactly (TwoSum: the decay may exceed |pp| here).
  Acc s = pp + decay_hi;
  Acc bv = s - pp;
  Acc err = (pp - (s - bv)) + (decay_hi - bv);
  Acc lo = pl + (decay_lo + err);
  Wkv4Pair<Acc> e = wkv4_pair<Acc>(((s - pp2) + lo) - pl2);
  aa = e.e_a * aa + e.e_b * aa2;
  bb = e.e_a * bb + e.e_b * bb2;
  pp = e.a_wins ? s : pp2;
  pl = e.a_wins ? lo : pl2;
}

// ---- the derivative of one step ------------------------------------------------
//
// The adjoint of a state (aa, bb, pp) is carried as (gaa, gbb, gq) with
//   gq = gpp - gaa·aa - gbb·bb,
// the part of d(loss)/d(pp) that is not explained by the represented sums
// e^{pp}·aa and e^{pp}·bb. Every y_t depends on the state only through those
// sums (the output's max cancels), so the output step adds nothing to gq, and
// the update passes it through its max: along the kept branch (pp+w >= k,
// pp' = pp + w) to the previous pp, else to k. So gq is exactly zero unless the
// caller seeds d/d(pp_T) inconsistently with the sums (any gState), and the
// recursion never cancels large terms (gpp itself would: it tracks
// gaa·aa + gbb·bb). pl is part of pp (pp + pl is the exponent), so it shares
// pp's adjoint. Derivation, with p' held fixed and then differentiated
// through the max:
//   aa' = e^{pp+w-p'} aa + e^{k-p'} v:  d/d(pp) = e1·aa, d/dk = e2·v, d/dp' = -aa'
//   bb' = e^{pp+w-p'} bb + e^{k-p'}:    d/d(pp) = e1·bb, d/dk = e2,   d/dp' = -bb'
//   gp' = gpp' - gaa'·aa' - gbb'·bb' = gq'
//   output: y = num/den, dy/daa = e1/den, dy/dbb = -e1·y/den, dy/dv = e2/den,
//           dy/d(u+k) = e2·(v-y)/den, dy/dpp = e1·(aa - bb·y)/den = aa·dy/daa + bb·dy/dbb.
//
// Input: the state before step t, the step's inputs and gy_t, and (gaa, gbb, gq)
// of the state after it. Output: (gaa, gbb, gq) of the state before it, gk_t,
// gv_t, and this step's terms of dL/dw and dL/du (to be summed over t).
template <typename Acc>
LMK_HOST_DEVICE void wkv4_step_backward(Acc aa, Acc bb, Acc pp, Acc pl, Wkv4Decay<Acc> w, Acc u, Acc k, Acc v, Acc gy,
                                        Acc& gaa, Acc& gbb, Acc& gq, Acc& gk, Acc& gv, Acc& gw, Acc& gu) {
  // The update, backwards.
  Wkv4Pair<Acc> e = wkv4_pair<Acc>(wkv4_decayed<Acc>(pp, pl, w, k).gap);
  Acc q = gq;
  Acc kept_q = e.a_wins ? q : static_cast<Acc>(0);
  Acc k_q = e.a_wins ? static_cast<Acc>(0) : q;
  gw = e.e_a * (gaa * aa + gbb * bb) + kept_q;
  Acc gk_update = e.e_b * (gaa * v + gbb) + k_q;
  Acc gv_update = e.e_b * gaa;
  gaa = e.e_a * gaa;
  gbb = e.e_a * gbb;
  gq = kept_q;
  // The output, backwards (y recomputed exactly as the forward did).
  Wkv4Pair<Acc> o = wkv4_pair<Acc>(wkv4_output_gap<Acc>(pp, pl, u, k));
  Acc den = o.e_a * bb + o.e_b;
  Acc y = (o.e_a * aa + o.e_b * v) / den;
  Acc g = gy / den;
  Acc g_state = g * o.e_a;
  gaa = gaa + g_state;
  gbb = gbb - g_state * y;
  Acc g_v = g * o.e_b;
  gu = g_v * (v - y);
  gk = gu + gk_update;
  gv = g_v + gv_update;
}

// The adjoint (gaa, gbb, gq) of the carried final state (aa, bb, pp + pl)
// from d(loss)/d(stored final state) = (gaa_out, gbb_out, gpp_out), through
// wkv4_fold (aa_out = aa·scale, bb_out = bb·scale, pp_out = pp + pl).
template <typename Acc>
LMK_HOST_DEVICE void wkv4_seed_adjoint(Acc gaa_out, Acc gbb_out, Acc gpp_out, Acc aa_out, Acc bb_out, Acc scale,
                                       Acc& gaa, Acc& gbb, Acc& gq) {
  gaa = gaa_out * scale;
  gbb = gbb_out * scale;
  gq = gpp_out - gaa_out * aa_out - gbb_out * bb_out;
}

// d(loss)/d(pp) of the initial state from its (gaa, gbb, gq).
template <typename Acc>
LMK_HOST_DEVICE Acc wkv4_gpp_from_gq(Acc gaa, Acc gbb, Acc gq, Acc aa, Acc bb) {
  return gq + gaa * aa + gbb * bb;
}

// d(loss)/d(timeDecay) from Σ gw: the chain rule through w = -exp(timeDecay).
template <typename Acc>
LMK_HOST_DEVICE Acc wkv4_time_decay_grad(Acc w, Acc gw_sum) {
  return w * gw_sum;
}

}  // namespace lmk
