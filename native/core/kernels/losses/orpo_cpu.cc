// ORPO on the CPU (kernels/losses/losses.h, orpo_math.h): pre-pass counts
// and label checks; a stats pass over the chosen and rejected rows (each
// chosen row carries two label slots: the odds-ratio label and the SFT
// label); the per-pair coefficients and batch results; then, when the
// gradient is wanted, a gradient pass from the saved row stats.
#include <algorithm>
#include <atomic>

#include "kernels/checks/index_check.h"
#include "kernels/losses/ce_rows.h"
#include "kernels/losses/losses.h"
#include "kernels/losses/orpo_math.h"
#include "runtime/thread_pool.h"

namespace lmk::kernels {
namespace {

// Supervised tokens of each sequence of labels [B, T]; the first bad label
// into `first_bad`; when `rule` is given, only kept tokens count.
void count_labels(const int32_t* labels, int64_t B, int64_t T, int64_t V, int64_t ignore_index, int64_t* counts,
                  int64_t* first_bad, const GoldfishRule* rule) {
  std::atomic<int64_t> first{*first_bad};
  parallel_for(B, std::max<int64_t>(1, 4096 / std::max<int64_t>(T, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      int64_t n = 0;
      for (int64_t t = 0; t < T; ++t) {
        int64_t i = b * T + t;
        int32_t y = labels[i];
        if (y == ignore_index) continue;
        if (y < 0 || y >= V) {
          record_first_bad_index(first, i);
          continue;
        }
        if (rule && rule->drops(b, t, T)) continue;
        ++n;
      }
      counts[b] = n;
    }
  });
  *first_bad = first.load();
}

}  // namespace

void orpo_count_cpu(const OrpoParams& p) {
  OrpoWorkspace w = orpo_workspace(p, p.workspace, p.grad_chosen != nullptr);
  const int64_t B = p.B, Tw = p.T_chosen, Tl = p.T_rejected;
  count_labels(p.chosen_labels, B, Tw, p.V, p.ignore_index, w.n_chosen, p.first_bad_chosen_label, nullptr);
  count_labels(p.rejected_labels, B, Tl, p.V, p.ignore_index, w.n_rejected, p.first_bad_rejected_label, nullptr);
  count_labels(p.nll_labels, B, Tw, p.V, p.ignore_index, w.n_sft_pair, p.first_bad_nll_label,
               p.goldfish.strategy != kGoldfishOff ? &p.goldfish : nullptr);
  int64_t n_sft = 0;
  for (int64_t b = 0; b < B; ++b) {
    n_sft += w.n_sft_pair[b];
    if (w.n_chosen[b] == 0) *p.first_empty_chosen = std::min(*p.first_empty_chosen, b);
    if (w.n_rejected[b] == 0) *p.first_empty_rejected = std::min(*p.first_empty_rejected, b);
  }
  *w.n_sft = n_sft;
}

void orpo_pairs_cpu(const OrpoParams& p) {
  OrpoWorkspace w = orpo_workspace(p, p.workspace, p.grad_chosen != nullptr);
  auto run = [&](auto acc_tag) {
    using Acc = decltype(acc_tag);
    parallel_for(p.B, 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) orpo_sequence<Acc, Acc>(p, w, b);
    });
    orpo_reduce<Acc>(p, w);
  };
  if (p.dtype == DType::Float64) {
    run(double{});
  } else {
    run(float{});
  }
}

size_t orpo_workspace_bytes(const OrpoParams& params) {
  return orpo_workspace(params, nullptr, params.grad_chosen != nullptr).bytes;
}

void orpo_cpu(const OrpoParams& p) {
  OrpoWorkspace w = orpo_workspace(p, p.workspace, p.grad_chosen != nullptr);
  orpo_count_cpu(p);
  // The row jobs of both sides; stats first.
  OrpoRowJobs jobs = orpo_stats_jobs(p, w);
  ce_rows_cpu(jobs.chosen);
  ce_rows_cpu(jobs.rejected);
  orpo_pairs_cpu(p);
  if (p.grad_chosen == nullptr) return;
  orpo_to_grad_jobs(p, w, &jobs);
  ce_rows_cpu(jobs.chosen);
  ce_rows_cpu(jobs.rejected);
}

}  // namespace lmk::kernels
