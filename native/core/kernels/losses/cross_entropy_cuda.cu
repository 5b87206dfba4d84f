// Cross-entropy and goldfish loss on CUDA (kernels/losses/losses.h): the
// counting pre-pass (integer atomics: exact in any order), the row kernel
// (ce_rows_cuda.cu), and a one-block reduction of the per-row losses in a
// fixed order, in double. Also the goldfish mask and shiftLabels.
#include <cuda_runtime.h>

#include "kernels/cuda_grid.h"
#include "kernels/cuda_launch.cuh"
#include "kernels/losses/ce_rows.h"
#include "kernels/losses/cross_entropy_job.h"
#include "kernels/losses/losses.h"
#include "runtime/cuda_check.h"

namespace lmk::kernels {
namespace {

constexpr int kThreads = 256;

// Grid-stride loops over n rows or labels, at most 4096 blocks.
unsigned rows_grid(int64_t n) { return looping_grid((n + kThreads - 1) / kThreads, 4096); }

// counts[0] += supervised tokens, counts[1] += kept ones; first bad label.
__global__ void count_kernel(const CrossEntropyParams p, unsigned long long* counts) {
  __shared__ unsigned long long block_counts[2];
  if (threadIdx.x < 2) block_counts[threadIdx.x] = 0;
  __syncthreads();
  unsigned long long supervised = 0, kept = 0;
  const bool goldfish = p.goldfish.strategy != kGoldfishOff;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < p.rows; i += int64_t(gridDim.x) * blockDim.x) {
    int32_t y = p.labels[i];
    if (y == p.ignore_index) continue;
    if (y < 0 || y >= p.V) {
      atomicMin(reinterpret_cast<unsigned long long*>(p.first_bad_label), static_cast<unsigned long long>(i));
      continue;
    }
    ++supervised;
    if (!goldfish || !p.goldfish.drops(i / p.T, i % p.T, p.T)) ++kept;
  }
  atomicAdd(&block_counts[0], supervised);
  atomicAdd(&block_counts[1], kept);
  __syncthreads();
  if (threadIdx.x < 2) atomicAdd(&counts[threadIdx.x], block_counts[threadIdx.x]);
}

template <typename Acc>
__device__ double value_at(const void* p, int64_t i) {
  return static_cast<double>(static_cast<const Acc*>(p)[i]);
}

// One block: sums[k] = Σ_i rows_k[i] in a fixed order (thread t sums
// i ≡ t mod kThreads in order, then a fixed tree), then the outputs.
template <typename Acc>
__global__ void finish_kernel(const CrossEntropyParams p, const int64_t* counts, const void* nll,
                              const void* nll_dropped) {
  __shared__ double partial[2][kThreads];
  double kept = 0, dropped = 0;
  for (int64_t i = threadIdx.x; i < p.rows; i += kThreads) {
    kept += value_at<Acc>(nll, i);
    if (nll_dropped) dropped += value_at<Acc>(nll_dropped, i);
  }
  partial[0][threadIdx.x] = kept;
  partial[1][threadIdx.x] = dropped;
  __syncthreads();
  for (int width = kThreads / 2; width > 0; width /= 2) {
    if (threadIdx.x < width) {
      partial[0][threadIdx.x] += partial[0][threadIdx.x + width];
      partial[1][threadIdx.x] += partial[1][threadIdx.x + width];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) cross_entropy_results<Acc>(p, counts, partial[0][0], partial[1][0]);
}

__global__ void goldfish_mask_kernel(const GoldfishMaskParams p) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < p.rows; i += int64_t(gridDim.x) * blockDim.x) {
    bool keep = p.labels[i] != p.ignore_index && !p.goldfish.drops(i / p.T, i % p.T, p.T);
    p.mask[i] = keep ? 1 : 0;
  }
}

__global__ void shift_labels_kernel(const int32_t* input_ids, int32_t* labels, int64_t n, int64_t T,
                                    int32_t ignore_index) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    labels[i] = (i % T == T - 1) ? ignore_index : input_ids[i + 1];
  }
}

}  // namespace

void cross_entropy_count_cuda(const CrossEntropyParams& p, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  int64_t* counts = cross_entropy_workspace(p, p.workspace).counts;
  cuda_check(cudaMemsetAsync(counts, 0, 2 * sizeof(int64_t), s), "losses");
  if (p.rows > 0) {
    launch(count_kernel, rows_grid(p.rows), kThreads, 0, s, p, reinterpret_cast<unsigned long long*>(counts));
    cuda_check_launch("losses: count");
  }
}

void cross_entropy_finish_cuda(const CrossEntropyParams& p, void* stream) {
  if (!cross_entropy_reduces(p)) return;
  const CrossEntropyWorkspace w = cross_entropy_workspace(p, p.workspace);
  launch(finish_kernel<float>, 1, kThreads, 0, static_cast<cudaStream_t>(stream), p, w.counts, w.nll, w.nll_dropped);
  cuda_check_launch("losses: reduce");
}

void cross_entropy_cuda(const CrossEntropyParams& p, void* stream) {
  cross_entropy_count_cuda(p, stream);
  ce_rows_cuda(cross_entropy_job(p, cross_entropy_workspace(p, p.workspace)), stream);
  cross_entropy_finish_cuda(p, stream);
}

void goldfish_mask_cuda(const GoldfishMaskParams& p, void* stream) {
  if (p.rows == 0) return;
  launch(goldfish_mask_kernel, rows_grid(p.rows), kThreads, 0, static_cast<cudaStream_t>(stream), p);
  cuda_check_launch("losses.goldfishMask");
}

void shift_labels_cuda(const int32_t* input_ids, int32_t* labels, int64_t rows, int64_t T, int32_t ignore_index,
                       void* stream) {
  int64_t n = rows * T;
  if (n == 0) return;
  launch(shift_labels_kernel, rows_grid(n), kThreads, 0, static_cast<cudaStream_t>(stream), input_ids, labels, n, T,
         ignore_index);
  cuda_check_launch("losses.shiftLabels");
}

}  // namespace lmk::kernels
