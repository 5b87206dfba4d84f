// Sequence-level scalar math of ORPO (docs/kernels.md#orpo), in double on both
// backends: log(1 − e^a) for a < 0 without cancellation, and the logistic
// function and its log without overflow.
//
//   log1mexp(a) = a < −ln 2 ? log1p(−e^a) : log(−expm1(a))      (Mächler 2012)
//   logσ(x)     = min(x, 0) − log1p(e^{−|x|})
//   σ(x)        = 1 / (1 + e^{−x}) for x >= 0, e^x / (1 + e^x) for x < 0
//
// ORPO clamps a to at most kOrpoMaxMeanLogProb before these, so a sequence
// the model is certain about (mean log-probability rounding to 0) gives a
// large finite log-odds instead of log(0) = −inf.
#pragma once
#include <cmath>

#include "math/host_device.h"

namespace lmk {

constexpr double kOrpoMaxMeanLogProb = -1e-30;

// log(1 − e^a) for a < 0.
LMK_HOST_DEVICE double log1mexp(double a) { return a < -0.6931471805599453 ? ::log1p(-::exp(a)) : ::log(-::expm1(a)); }

LMK_HOST_DEVICE double log_sigmoid(double x) {
  double negative_part = x < 0.0 ? x : 0.0;
  return negative_part - ::log1p(::exp(-::fabs(x)));
}

LMK_HOST_DEVICE double sigmoid(double x) {
  if (x >= 0.0) return 1.0 / (1.0 + ::exp(-x));
  double e = ::exp(x);
  return e / (1.0 + e);
}

}  // namespace lmk
