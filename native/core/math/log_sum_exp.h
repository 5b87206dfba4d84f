// Cross-entropy row math shared by the CPU and CUDA loss kernels
// (docs/kernels.md#losses). `Acc` is the accumulation type: float for float32,
// bfloat16 and float16 logits, double for float64.
//
// A row z of length V is summarised by its maximum m and
//   s_other = Σ_{j ∉ labels} e^{z_j − m},
// the sum over every entry EXCEPT the row's (at most two) label entries,
// accumulated online: a running (m, s) pair is rescaled by e^{m_old − m_new}
// whenever the maximum grows (lse_rescale), and partial pairs are merged the
// same way (lse_merge). The label terms e_y = e^{z_y − m} are kept apart, so
//   S    = s_other + Σ e_y,           lse = m + log S,
//   rest = S − e_y (summed, never subtracted),
//   −log p_y = log1p(rest)      when z_y is the maximum (d = m − z_y = 0),
//            = d + log S        otherwise (then rest >= 1: no cancellation),
// which keeps −log p_y accurate — and nonzero while rest is representable —
// when the model is certain, where lse − z_y would round to 0.
//
// Gradient of Σ_slots c_slot·(−log p_{y_slot}) with respect to z:
//   g_j     = (Σ c)·e^{z_j − m} / S                 for j not a label,
//   g_{y_a} = (c_b·e_{y_a} − c_a·rest_a) / S        (b the other slot, if any),
// again without subtracting nearly equal numbers. Two slots serve ORPO's
// chosen rows (the odds-ratio label and the SFT label); every other loss uses one.
#pragma once
#include <cmath>
#include <cstdint>

#include "math/host_device.h"
#include "math/vector_exp.h"

namespace lmk {

// e^x for x <= 0 (every exponent here is z − max or m_old − m_new): the
// hardware approximation on CUDA (__expf: about 2 ulp near 0, growing with
// |x|; the GPU rows are bandwidth-bound and this is 2 instructions),
// math/vector_exp.h's on the CPU (vectorisable), exp for double. NaN rows
// are detected by the kernels themselves.
template <typename Acc>
LMK_HOST_DEVICE Acc lse_exp(Acc x);
template <>
LMK_HOST_DEVICE float lse_exp<float>(float x) {
#if defined(__CUDA_ARCH__)
  return __expf(x);
#else
  return vector_expf_nonpositive(x);
#endif
}
template <>
LMK_HOST_DEVICE double lse_exp<double>(double x) {
  return vector_exp_nonpositive(x);
}

LMK_HOST_DEVICE float lse_log(float x) { return ::logf(x); }
LMK_HOST_DEVICE double lse_log(double x) { return ::log(x); }
LMK_HOST_DEVICE float lse_log1p(float x) { return ::log1pf(x); }
LMK_HOST_DEVICE double lse_log1p(double x) { return ::log1p(x); }

template <typename Acc>
LMK_HOST_DEVICE Acc lse_neg_inf() {
  return -static_cast<Acc>(INFINITY);
}

// s·e^{m_old − m_new} for m_new >= m_old; an empty state (m_old = −inf) gives 0.
template <typename Acc>
LMK_HOST_DEVICE Acc lse_rescale(Acc s, Acc m_old, Acc m_new) {
  return m_old == lse_neg_inf<Acc>() ? Acc(0) : s * lse_exp<Acc>(m_old - m_new);
}

// Merges the running pair (m, s) with (m2, s2), both sums relative to their max.
template <typename Acc>
LMK_HOST_DEVICE void lse_merge(Acc& m, Acc& s, Acc m2, Acc s2) {
  if (m2 > m) {
    s = lse_rescale(s, m, m2) + s2;
    m = m2;
  } else {
    s = s + lse_rescale(s2, m2, m);
  }
}

// The label set of one row: 0, 1 or 2 distinct labels (slots whose labels
// coincide are merged by the caller, coefficients added).
template <typename Acc>
struct CeRowLabels {
  int count = 0;
  int32_t y[2] = {0, 0};
  Acc c[2] = {0, 0};  // gradient coefficients (0 when no gradient is wanted)
};

template <typename Acc>
struct CeRowResult {
  Acc S = 0, lse = 0;
  Acc nll[2] = {0, 0};      // −log p of each label
  Acc scale = 0;            // (Σ c) / S: g_j = scale·e^{z_j − m} off the labels
  Acc g_label[2] = {0, 0};  // the gradient at each label
};

// From the row max m, s_other and the labels' logits z_label[], everything
// the row contributes (see the header comment).
template <typename Acc>
LMK_HOST_DEVICE CeRowResult<Acc> ce_row_result(Acc m, Acc s_other, const CeRowLabels<Acc>& labels, const Acc* z_label) {
  CeRowResult<Acc> r;
  Acc e[2] = {0, 0};
  for (int a = 0; a < labels.count; ++a) e[a] = lse_exp<Acc>(z_label[a] - m);
  r.S = s_other + e[0] + e[1];
  Acc log_S = lse_log(r.S);
  r.lse = m + log_S;
  Acc c_sum = labels.c[0] + labels.c[1];
  r.scale = c_sum / r.S;
  for (int a = 0; a < labels.count; ++a) {
    int b = 1 - a;
    Acc rest = s_other + (labels.count == 2 ? e[b] : Acc(0));
    Acc d = m - z_label[a];
    r.nll[a] = d == Acc(0) ? lse_log1p(rest) : d + log_S;
    Acc other_c = labels.count == 2 ? labels.c[b] : Acc(0);
    r.g_label[a] = (other_c * e[a] - labels.c[a] * rest) / r.S;
  }
  return r;
}

}  // namespace lmk
