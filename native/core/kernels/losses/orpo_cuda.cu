// ORPO on CUDA (kernels/losses/losses.h, orpo_math.h), the same steps as
// orpo_cpu.cc: per-sequence counts and label checks (one block per sequence,
// a fixed-order block sum: no atomics on values), the stats pass over both
// sides, one block computing the per-pair coefficients and the batch results
// (orpo_math.h, in double, same order as the CPU), then the gradient pass.
// No host synchronisation anywhere.
#include <cuda_runtime.h>

#include "kernels/cuda_launch.cuh"
#include "kernels/losses/ce_rows.h"
#include "kernels/losses/losses.h"
#include "kernels/losses/orpo_math.h"
#include "runtime/cuda_check.h"

namespace lmk::kernels {
namespace {

constexpr int kThreads = 256;

// Block (b, side): supervised tokens of sequence b of chosen (0), rejected
// (1) or nll (2, goldfish-kept) labels, and the first bad label.
__global__ void count_kernel(const OrpoParams p, OrpoWorkspace w) {
  __shared__ int64_t partial[kThreads];
  const int64_t b = blockIdx.x;
  const int side = blockIdx.y;
  const int32_t* labels = side == 0 ? p.chosen_labels : side == 1 ? p.rejected_labels : p.nll_labels;
  const int64_t T = side == 1 ? p.T_rejected : p.T_chosen;
  int64_t* first_bad = side == 0   ? p.first_bad_chosen_label
                       : side == 1 ? p.first_bad_rejected_label
                                   : p.first_bad_nll_label;
  const bool goldfish = side == 2 && p.goldfish.strategy != kGoldfishOff;
  int64_t n = 0;
  for (int64_t t = threadIdx.x; t < T; t += kThreads) {
    int64_t i = b * T + t;
    int32_t y = labels[i];
    if (y == p.ignore_index) continue;
    if (y < 0 || y >= p.V) {
      atomicMin(reinterpret_cast<unsigned long long*>(first_bad), static_cast<unsigned long long>(i));
      continue;
    }
    if (goldfish && p.goldfish.drops(b, t, T)) continue;
    ++n;
  }
  partial[threadIdx.x] = n;
  __syncthreads();
  for (int width = kThreads / 2; width > 0; width /= 2) {
    if (threadIdx.x < width) partial[threadIdx.x] += partial[threadIdx.x + width];
    __syncthreads();
  }
  if (threadIdx.x == 0) (side == 0 ? w.n_chosen : side == 1 ? w.n_rejected : w.n_sft_pair)[b] = partial[0];
}

template <typename Acc, typename Out>
__global__ void pairs_kernel(const OrpoParams p, OrpoWorkspace w) {
  for (int64_t b = threadIdx.x; b < p.B; b += kThreads) {
    if (w.n_chosen[b] == 0) {
      atomicMin(reinterpret_cast<unsigned long long*>(p.first_empty_chosen), static_cast<unsigned long long>(b));
    }
    if (w.n_rejected[b] == 0) {
      atomicMin(reinterpret_cast<unsigned long long*>(p.first_empty_rejected), static_cast<unsigned long long>(b));
    }
    orpo_sequence<Acc, Out>(p, w, b);
  }
  __syncthreads();
  if (threadIdx.x != 0) return;
  int64_t n_sft = 0;
  for (int64_t b = 0; b < p.B; ++b) n_sft += w.n_sft_pair[b];
  *w.n_sft = n_sft;
  orpo_reduce<Out>(p, w);
}

}  // namespace

void orpo_count_cuda(const OrpoParams& p, void* stream) {
  OrpoWorkspace w = orpo_workspace(p, p.workspace, p.grad_chosen != nullptr);
  launch(count_kernel, dim3(static_cast<unsigned>(p.B), 3), kThreads, 0, static_cast<cudaStream_t>(stream), p, w);
  cuda_check_launch("losses.orpo: count");
}

void orpo_pairs_cuda(const OrpoParams& p, void* stream) {
  OrpoWorkspace w = orpo_workspace(p, p.workspace, p.grad_chosen != nullptr);
  launch(pairs_kernel<float, float>, 1, kThreads, 0, static_cast<cudaStream_t>(stream), p, w);
  cuda_check_launch("losses.orpo: pairs");
}

void orpo_cuda(const OrpoParams& p, void* stream) {
  OrpoWorkspace w = orpo_workspace(p, p.workspace, p.grad_chosen != nullptr);
  orpo_count_cuda(p, stream);
  OrpoRowJobs jobs = orpo_stats_jobs(p, w);
  ce_rows_cuda(jobs.chosen, stream);
  ce_rows_cuda(jobs.rejected, stream);
  orpo_pairs_cuda(p, stream);
  if (p.grad_chosen == nullptr) return;
  orpo_to_grad_jobs(p, w, &jobs);
  ce_rows_cuda(jobs.chosen, stream);
  ce_rows_cuda(jobs.rejected, stream);
}

}  // namespace lmk::kernels
