// Cross-entropy / goldfish loss pieces shared by cross_entropy_cpu.cc and
// cross_entropy_cuda.cu, so the two backends lay out the workspace, drive the
// row kernel and form the results alike: the workspace layout, the fused row
// job, and the results from the sums of the per-row losses.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/losses/ce_rows.h"
#include "kernels/losses/losses.h"
#include "kernels/workspace_layout.h"
#include "math/host_device.h"

namespace lmk::kernels {

// Workspace layout (kernels/workspace_layout.h; with base = nullptr only
// `bytes` is meaningful).
struct CrossEntropyWorkspace {
  int64_t* counts;    // [2]: supervised tokens, kept tokens (= supervised without goldfish)
  void* nll;          // [rows] acc: −log p of each row's label (kept tokens only with goldfish)
  void* nll_dropped;  // [rows] acc: the same for goldfish-dropped tokens; nullptr without goldfish
  size_t bytes;
};

inline CrossEntropyWorkspace cross_entropy_workspace(const CrossEntropyParams& p, void* base) {
  const size_t acc = p.dtype == DType::Float64 ? 8 : 4;
  const size_t rows = static_cast<size_t>(p.rows);
  const bool goldfish = p.goldfish.strategy != kGoldfishOff;
  WorkspaceLayout layout(base);
  CrossEntropyWorkspace w;
  w.counts = layout.take<int64_t>(2 * sizeof(int64_t));
  w.nll = layout.take(rows * acc);
  w.nll_dropped = goldfish ? layout.take(rows * acc) : nullptr;
  w.bytes = layout.bytes();
  return w;
}

// The fused row job: one label slot whose coefficient is gradScale, divided
// by the kept count for a mean (and always with goldfish); per-token losses
// go to w.nll (or straight to p.loss for reduction 'none' without goldfish).
inline CeRowsJob cross_entropy_job(const CrossEntropyParams& p, const CrossEntropyWorkspace& w) {
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
  slot.count = (goldfish || p.reduction == kLossMean) ? &w.counts[1] : nullptr;
  slot.weights = p.weights;
  slot.weights_dtype = p.weights_dtype;
  slot.goldfish = goldfish;
  slot.nll = p.reduction == kLossNone && !goldfish ? p.loss : w.nll;
  slot.nll_dropped = w.nll_dropped;
  return job;
}

// The stages of cross_entropy_cpu / _cuda, for callers that run the row
// kernel themselves between them (the losses from hidden states, chunk by
// chunk): the counting pre-pass (counts into the workspace, the first bad
// label), and the fixed-order reduction of w.nll / w.nll_dropped into the
// results.
void cross_entropy_count_cpu(const CrossEntropyParams& p);
void cross_entropy_finish_cpu(const CrossEntropyParams& p);
void cross_entropy_count_cuda(const CrossEntropyParams& p, void* stream);
void cross_entropy_finish_cuda(const CrossEntropyParams& p, void* stream);

// Whether the results need the sums of w.nll (all but reduction 'none' without goldfish).
inline bool cross_entropy_reduces(const CrossEntropyParams& p) {
  return p.reduction != kLossNone || p.goldfish.strategy != kGoldfishOff;
}

// The scalar results from the counts and the sums (in double) of w.nll and
// w.nll_dropped. Out: the output type (double for float64 logits, else float).
template <typename Out>
LMK_HOST_DEVICE void cross_entropy_results(const CrossEntropyParams& p, const int64_t* counts, double sum_kept,
                                           double sum_dropped) {
  auto mean = [](double sum, int64_t count) { return count > 0 ? sum / static_cast<double>(count) : 0.0; };
  Out* loss = static_cast<Out*>(p.loss);
  if (p.goldfish.strategy == kGoldfishOff) {
    *loss = static_cast<Out>(p.reduction == kLossMean ? mean(sum_kept, counts[0]) : sum_kept);
    return;
  }
  *loss = static_cast<Out>(mean(sum_kept, counts[1]));
  *static_cast<Out*>(p.loss_all) = static_cast<Out>(mean(sum_kept + sum_dropped, counts[0]));
  *static_cast<Out*>(p.loss_dropped) = static_cast<Out>(mean(sum_dropped, counts[0] - counts[1]));
  *p.supervised_count = static_cast<int32_t>(counts[0] < INT32_MAX ? counts[0] : INT32_MAX);
  *p.kept_count = static_cast<int32_t>(counts[1] < INT32_MAX ? counts[1] : INT32_MAX);
}

}  // namespace lmk::kernels
