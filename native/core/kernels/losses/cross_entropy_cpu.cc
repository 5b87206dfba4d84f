// Cross-entropy and goldfish loss on the CPU (kernels/losses/losses.h): a
// counting pre-pass over the labels, the fused row kernel (ce_rows_cpu.cc),
// and a reduction of the per-row losses in row order, in double. Also the
// goldfish mask and shiftLabels.
#include <algorithm>
#include <atomic>

#include "kernels/checks/index_check.h"
#include "kernels/losses/ce_rows.h"
#include "kernels/losses/cross_entropy_job.h"
#include "kernels/losses/losses.h"
#include "runtime/thread_pool.h"

namespace lmk::kernels {

size_t cross_entropy_workspace_bytes(const CrossEntropyParams& p) { return cross_entropy_workspace(p, nullptr).bytes; }

void cross_entropy_count_cpu(const CrossEntropyParams& p) {
  const bool goldfish = p.goldfish.strategy != kGoldfishOff;
  const CrossEntropyWorkspace w = cross_entropy_workspace(p, p.workspace);
  int64_t* counts = w.counts;

  // Pre-pass: count supervised (and kept) tokens, find the first bad label.
  std::atomic<int64_t> supervised{0}, kept{0}, first_bad{*p.first_bad_label};
  parallel_for(p.rows, 4096, [&](int64_t begin, int64_t end) {
    int64_t local_supervised = 0, local_kept = 0;
    for (int64_t i = begin; i < end; ++i) {
      int32_t y = p.labels[i];
      if (y == p.ignore_index) continue;
      if (y < 0 || y >= p.V) {
        record_first_bad_index(first_bad, i);
        continue;
      }
      ++local_supervised;
      if (goldfish && !p.goldfish.drops(i / p.T, i % p.T, p.T)) ++local_kept;
    }
    supervised.fetch_add(local_supervised);
    kept.fetch_add(local_kept);
  });
  *p.first_bad_label = first_bad.load();
  counts[0] = supervised.load();
  counts[1] = goldfish ? kept.load() : counts[0];
}

void cross_entropy_finish_cpu(const CrossEntropyParams& p) {
  if (!cross_entropy_reduces(p)) return;
  const CrossEntropyWorkspace w = cross_entropy_workspace(p, p.workspace);
  const int64_t* counts = w.counts;

  // Fixed-order sums in double.
  const bool f64 = p.dtype == DType::Float64;
  auto value = [&](const void* base, int64_t i) {
    return f64 ? static_cast<const double*>(base)[i] : static_cast<double>(static_cast<const float*>(base)[i]);
  };
  double sum_kept = 0, sum_dropped = 0;
  for (int64_t i = 0; i < p.rows; ++i) {
    sum_kept += value(w.nll, i);
    if (w.nll_dropped) sum_dropped += value(w.nll_dropped, i);
  }
  if (f64) {
    cross_entropy_results<double>(p, counts, sum_kept, sum_dropped);
  } else {
    cross_entropy_results<float>(p, counts, sum_kept, sum_dropped);
  }
}

void cross_entropy_cpu(const CrossEntropyParams& p) {
  cross_entropy_count_cpu(p);
  ce_rows_cpu(cross_entropy_job(p, cross_entropy_workspace(p, p.workspace)));
  cross_entropy_finish_cpu(p);
}

void goldfish_mask_cpu(const GoldfishMaskParams& p) {
  parallel_for(p.rows, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      int32_t y = p.labels[i];
      bool keep = y != p.ignore_index && !p.goldfish.drops(i / p.T, i % p.T, p.T);
      p.mask[i] = keep ? 1 : 0;
    }
  });
}

void shift_labels_cpu(const int32_t* input_ids, int32_t* labels, int64_t rows, int64_t T, int32_t ignore_index) {
  parallel_for(rows * T, 1 << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) labels[i] = (i % T == T - 1) ? ignore_index : input_ids[i + 1];
  });
}

}  // namespace lmk::kernels
