// Cross-entropy and goldfish loss on the CPU (kernels/losses/losses.h): a
// counting pre-pass over the labels, the fused row kernel (ce_rows_cpu.cc),
// and a reduction of the per-row losses in row order, in double. Also the
// goldfish mask and shiftLabels, and the test switch for the CUDA kernels.
#include <algorithm>
#include <atomic>

#include "kernels/losses/ce_rows.h"
#include "kernels/losses/cross_entropy_job.h"
#include "kernels/losses/losses.h"
#include "runtime/thread_pool.h"

namespace lmk::kernels {
namespace {

std::atomic<bool> simple_cuda_kernels{false};

size_t round_up(size_t bytes) { return (bytes + 63) / 64 * 64; }

void atomic_min_index(std::atomic<int64_t>& first, int64_t index) {
  int64_t seen = first.load();
  while (index < seen && !first.compare_exchange_weak(seen, index)) {
  }
}

template <typename Out>
void store_out(void* p, int64_t i, double v) {
  static_cast<Out*>(p)[i] = static_cast<Out>(v);
}

}  // namespace

void set_simple_cuda_loss_kernels(bool simple) { simple_cuda_kernels.store(simple); }
bool simple_cuda_loss_kernels() { return simple_cuda_kernels.load(); }

size_t cross_entropy_workspace_bytes(const CrossEntropyParams& p) {
  size_t acc = p.dtype == DType::Float64 ? 8 : 4;
  size_t rows = static_cast<size_t>(p.rows);
  bool goldfish = p.goldfish.strategy != kGoldfishOff;
  return round_up(2 * sizeof(int64_t)) + round_up(rows * acc) * (goldfish ? 2 : 1);
}

void cross_entropy_cpu(const CrossEntropyParams& p) {
  const bool goldfish = p.goldfish.strategy != kGoldfishOff;
  char* ws = static_cast<char*>(p.workspace);
  int64_t* counts = reinterpret_cast<int64_t*>(ws);  // [0] supervised, [1] kept
  size_t acc = p.dtype == DType::Float64 ? 8 : 4;
  void* nll = ws + round_up(2 * sizeof(int64_t));
  void* nll_dropped = goldfish ? static_cast<char*>(nll) + round_up(static_cast<size_t>(p.rows) * acc) : nullptr;

  // Pre-pass: count supervised (and kept) tokens, find the first bad label.
  std::atomic<int64_t> supervised{0}, kept{0}, first_bad{*p.first_bad_label};
  parallel_for(p.rows, 4096, [&](int64_t begin, int64_t end) {
    int64_t local_supervised = 0, local_kept = 0;
    for (int64_t i = begin; i < end; ++i) {
      int32_t y = p.labels[i];
      if (y == p.ignore_index) continue;
      if (y < 0 || y >= p.V) {
        atomic_min_index(first_bad, i);
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

  CeRowsJob job = cross_entropy_job(p, &counts[1], nll, nll_dropped);
  ce_rows_cpu(job);

  // Fixed-order reductions in double.
  bool f64 = p.dtype == DType::Float64;
  auto value = [&](const void* base, int64_t i) {
    return f64 ? static_cast<const double*>(base)[i] : static_cast<double>(static_cast<const float*>(base)[i]);
  };
  auto store = [&](void* out, double v) { f64 ? store_out<double>(out, 0, v) : store_out<float>(out, 0, v); };
  auto mean = [](double sum, int64_t count) { return count > 0 ? sum / static_cast<double>(count) : 0.0; };
  if (!goldfish) {
    if (p.reduction == kLossNone) return;
    double sum = 0;
    for (int64_t i = 0; i < p.rows; ++i) sum += value(nll, i);
    store(p.loss, p.reduction == kLossMean ? mean(sum, counts[0]) : sum);
    return;
  }
  double sum_kept = 0, sum_dropped = 0, sum_all = 0;
  for (int64_t i = 0; i < p.rows; ++i) {
    double a = value(nll, i), b = value(nll_dropped, i);
    sum_kept += a;
    sum_dropped += b;
    sum_all += a + b;
  }
  store(p.loss, mean(sum_kept, counts[1]));
  store(p.loss_all, mean(sum_all, counts[0]));
  store(p.loss_dropped, mean(sum_dropped, counts[0] - counts[1]));
  *p.supervised_count = static_cast<int32_t>(std::min<int64_t>(counts[0], INT32_MAX));
  *p.kept_count = static_cast<int32_t>(std::min<int64_t>(counts[1], INT32_MAX));
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
