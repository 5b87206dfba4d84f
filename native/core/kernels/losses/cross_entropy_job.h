// The fused row job of cross-entropy / goldfish loss (host code shared by
// cross_entropy_cpu.cc and cross_entropy_cuda.cu): one label slot whose
// coefficient is gradScale, divided by *count for a mean; per-token losses go
// to `nll` (or straight to p.loss for reduction 'none' without goldfish).
#pragma once
#include "kernels/losses/ce_rows.h"
#include "kernels/losses/losses.h"

namespace lmk::kernels {

inline CeRowsJob cross_entropy_job(const CrossEntropyParams& p, const int64_t* count, void* nll, void* nll_dropped) {
  const bool goldfish = p.goldfish.strategy != kGoldfishOff;
  CeRowsJob job;
  job.dtype = p.dtype;
  job.rows = p.rows;
  job.V = p.V;
  job.T = p.T;
  job.ignore_index = p.ignore_index;
  job.mode = kCeFused;
  job.logits = p.logits;
  job.goldfish = p.goldfish;
  job.lse = p.lse;
  job.grad = p.grad;
  CeSlot& slot = job.slot[0];
  slot.labels = p.labels;
  slot.grad_scale = p.grad_scale;
  slot.count = (goldfish || p.reduction == kLossMean) ? count : nullptr;
  slot.weights = p.weights;
  slot.weights_dtype = p.weights_dtype;
  slot.goldfish = goldfish;
  slot.nll = p.reduction == kLossNone && !goldfish ? p.loss : nll;
  slot.nll_dropped = nll_dropped;
  return job;
}

}  // namespace lmk::kernels
