// Softmax attention arithmetic shared by the CPU and CUDA attention kernels
// (FlashAttention-2's scheme, Dao 2023): scores s = scale·q·k; a row's keys
// are visited tile by tile with a running maximum M and a running sum
// ℓ = Σ e^{s−M}; the output accumulator is rescaled whenever M grows, and the
// row ends with out = acc/ℓ and lse = M + log ℓ (natural log). The backward
// recomputes p = e^{s−lse}, dp = gOut·v, ds = p·(dp − Δ) with
// Δ = rowsum(gOut∘out); then dq += scale·ds·k, dk += scale·ds·q, dv += p·gOut.
#pragma once
#include <cmath>

#include "math/host_device.h"
#include "math/vector_exp.h"

namespace lmk {

template <typename Acc>
LMK_HOST_DEVICE Acc attention_neg_inf() {
  return -static_cast<Acc>(INFINITY);
}

// The running maximum used as the exponent offset: a row that has seen only
// masked scores (M = −inf) uses 0, so e^{−inf − 0} = 0 instead of NaN.
template <typename Acc>
LMK_HOST_DEVICE Acc online_softmax_offset(Acc running_max) {
  return running_max == attention_neg_inf<Acc>() ? Acc(0) : running_max;
}

// Grow the running maximum to cover a new tile whose largest score is
// `tile_max`; returns the factor e^{M_old − M_new} (<= 1) by which the running
// sum and the output accumulator must be multiplied.
template <typename Acc>
LMK_HOST_DEVICE Acc online_softmax_grow(Acc* running_max, Acc tile_max) {
  Acc old_max = *running_max;
  Acc new_max = tile_max > old_max ? tile_max : old_max;
  *running_max = new_max;
  return vector_exp(old_max - online_softmax_offset<Acc>(new_max));  // old = −inf gives 0
}

// The softmax weight of score s under the running maximum (forward) or the
// saved log-sum-exp (backward). A masked score (−inf) gives 0.
template <typename Acc>
LMK_HOST_DEVICE Acc softmax_weight(Acc s, Acc offset) {
  return vector_exp(s - offset);
}

// log-sum-exp of a finished row: M + log ℓ (ℓ >= 1 when the row saw a key).
template <typename Acc>
LMK_HOST_DEVICE Acc online_softmax_lse(Acc running_max, Acc running_sum) {
#if defined(__CUDA_ARCH__)
  return running_max + ::log(running_sum);
#else
  return running_max + std::log(running_sum);
#endif
}

// ds = p·(dp − Δ): the gradient of a score from its weight p, dp = gOut·v and Δ = rowsum(gOut∘out).
template <typename Acc>
LMK_HOST_DEVICE Acc softmax_score_grad(Acc p, Acc dp, Acc delta) {
  return p * (dp - delta);
}

}  // namespace lmk
