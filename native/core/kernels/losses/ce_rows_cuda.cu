// The cross-entropy row kernel on CUDA (kernels/losses/ce_rows.h), in two
// versions run by the same launcher:
//
//   ce_rows_simple_kernel — one thread per row, plain loops (max, sum of
//     exponentials without the labels, gradient): obviously correct, slow;
//     the GPU tests compare it with the fast one and with the CPU
//     (KernelVariant::Reference, kernels/test_hooks.h).
//   ce_rows_kernel — one block per row (256 or 1024 threads). Stats: each thread walks
//     the row in 16-byte packs (4 float32 or 8 bfloat16/float16 entries,
//     after a scalar head up to 16-byte alignment) keeping an online (max,
//     sum) pair that skips the label entries; the pairs are merged by warp
//     shuffles, then across warps in a fixed order (deterministic: no
//     floating-point atomics). Thread 0 forms the row's results
//     (math/log_sum_exp.h). Gradient (fused or kCeGrad): the row is read a
//     second time — usually from L2, which holds the ~132 rows in flight —
//     and g_j = (Σc)/S·e^{z_j − m} written once, label entries in place.
//
// Bytes per row in fused mode: the logits read twice (the second read mostly
// an L2 hit), the gradient written once.
#include <cuda_runtime.h>

#include "kernels/cuda_grid.h"
#include "kernels/cuda_launch.cuh"
#include "kernels/losses/ce_rows.h"
#include "kernels/losses/losses.h"
#include "kernels/test_hooks.h"
#include "math/compute_type.h"
#include "math/half.h"
#include "math/log_sum_exp.h"
#include "runtime/cuda_check.h"

namespace lmk::kernels {
namespace {

// Threads per row: 1024 for long rows (fewer rows in flight per SM, so a
// row is more likely still in L2 when the gradient pass re-reads it), 256
// otherwise. Chosen from V alone, so results do not depend on the device.
constexpr int kMaxThreads = 1024;
constexpr int kMaxWarps = kMaxThreads / 32;
constexpr int64_t kLongRow = 16384;
inline int threads_for(int64_t V) { return V >= kLongRow ? 1024 : 256; }

// 16-byte packs of W entries.
template <typename T>  // bf16, f16: two entries per 32-bit word, the first in the low half
struct Pack {
  static constexpr int W = 8;
  __device__ __forceinline__ static void unpack(const uint4& raw, float* v) {
    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      v[2 * k] = to_compute(T{static_cast<uint16_t>(words[k] & 0xffffu)});
      v[2 * k + 1] = to_compute(T{static_cast<uint16_t>(words[k] >> 16)});
    }
  }
  __device__ __forceinline__ static uint4 pack(const float* v) {
    uint32_t words[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      words[k] = static_cast<uint32_t>(from_compute<T>(v[2 * k]).bits) |
                 (static_cast<uint32_t>(from_compute<T>(v[2 * k + 1]).bits) << 16);
    }
    return make_uint4(words[0], words[1], words[2], words[3]);
  }
};
template <>
struct Pack<float> {
  static constexpr int W = 4;
  __device__ __forceinline__ static void unpack(const uint4& raw, float* v) {
    v[0] = __uint_as_float(raw.x);
    v[1] = __uint_as_float(raw.y);
    v[2] = __uint_as_float(raw.z);
    v[3] = __uint_as_float(raw.w);
  }
  __device__ __forceinline__ static uint4 pack(const float* v) {
    return make_uint4(__float_as_uint(v[0]), __float_as_uint(v[1]), __float_as_uint(v[2]), __float_as_uint(v[3]));
  }
};

// The row split this thread handles: a scalar head up to 16-byte alignment,
// packs, a scalar tail. Logits and gradient rows normally share the
// alignment (same element offset, both allocations 256-byte aligned); the
// gradient pass falls back to scalar stores when they do not.
struct RowSplit {
  int64_t head, packs, tail_start;
};
template <typename T>
__device__ __forceinline__ RowSplit row_split(const T* row, int64_t V) {
  constexpr int W = Pack<T>::W;
  uintptr_t misaligned = reinterpret_cast<uintptr_t>(row) & 15u;
  int64_t head = misaligned ? static_cast<int64_t>((16u - misaligned) / sizeof(T)) : 0;
  if (head > V) head = V;
  int64_t packs = (V - head) / W;
  return RowSplit{head, packs, head + packs * W};
}

// Online (max, sum) over the entries this thread sees, skipping labels.
struct OnlineSum {
  float m = -INFINITY, s = 0.0f;
  bool nan = false;
  __device__ __forceinline__ void add(const float* v, int n, int64_t j0, int32_t y0, int32_t y1) {
    float pm = -INFINITY;
    for (int k = 0; k < n; ++k) {
      pm = fmaxf(pm, v[k]);
      nan |= v[k] != v[k];
    }
    if (pm > m) {
      s = lse_rescale(s, m, pm);
      m = pm;
    }
    if (m == -INFINITY) return;  // everything so far is -inf
    for (int k = 0; k < n; ++k) {
      int64_t j = j0 + k;
      s += (j == y0 || j == y1) ? 0.0f : lse_exp<float>(v[k] - m);
    }
  }
};

struct RowShared {
  CeRowLabels<float> labels;
  int label_of_slot[2];
  bool kept[2];
  bool skip_stats;  // no label and no lse: the row is not read
  bool zero_grad;   // the gradient row is all zeros
  float m, s_other, scale, g_label[2];
  float warp_m[kMaxWarps], warp_s[kMaxWarps];
  int warp_nan[kMaxWarps];
};

template <typename T>
__global__ void __launch_bounds__(kMaxThreads) ce_rows_kernel(CeRowsJob job) {
  // RowShared has default member initialisers, which __shared__ variables
  // may not have: use raw storage.
  __shared__ __align__(16) unsigned char sh_raw[sizeof(RowShared)];
  RowShared& sh = *reinterpret_cast<RowShared*>(sh_raw);
  constexpr int W = Pack<T>::W;
  const int64_t V = job.V;
  const bool want_grad = job.grad != nullptr && job.mode != kCeStats;
  const int threads = blockDim.x, warps = threads / 32;
  for (int64_t i = job.first_row + blockIdx.x; i < job.first_row + job.rows; i += gridDim.x) {
    const T* z = static_cast<const T*>(job.logits) + (i - job.first_row) * V;
    T* g = want_grad ? static_cast<T*>(job.grad) + (i - job.first_row) * V : nullptr;
    if (threadIdx.x == 0) {
      sh.labels = CeRowLabels<float>{};
      ce_row_labels<float>(job, i, want_grad, &sh.labels, sh.label_of_slot, sh.kept);
      sh.skip_stats = sh.labels.count == 0 && job.lse == nullptr;
      sh.zero_grad = sh.skip_stats || (sh.labels.c[0] == 0.0f && sh.labels.c[1] == 0.0f);
      if (sh.skip_stats && job.mode != kCeGrad) ce_row_store_nll<float>(job, i, nullptr, sh.label_of_slot, sh.kept);
    }
    __syncthreads();
    const int32_t y0 = sh.labels.count > 0 ? sh.labels.y[0] : -1;
    const int32_t y1 = sh.labels.count > 1 ? sh.labels.y[1] : -1;
    const RowSplit split = row_split(z, V);

    if (!sh.skip_stats) {
      if (job.mode == kCeGrad) {
        if (threadIdx.x == 0) {
          sh.m = static_cast<const float*>(job.row_max)[i];
          sh.s_other = static_cast<const float*>(job.row_sum)[i];
        }
      } else {
        OnlineSum acc;
        if (threadIdx.x < split.head) {
          float v = load_compute(z, threadIdx.x);
          acc.add(&v, 1, threadIdx.x, y0, y1);
        }
        const uint4* packs = reinterpret_cast<const uint4*>(z + split.head);
        for (int64_t p = threadIdx.x; p < split.packs; p += threads) {
          float v[W];
          Pack<T>::unpack(packs[p], v);
          acc.add(v, W, split.head + p * W, y0, y1);
        }
        for (int64_t j = split.tail_start + threadIdx.x; j < V; j += threads) {
          float v = load_compute(z, j);
          acc.add(&v, 1, j, y0, y1);
        }
        // Merge: within the warp by shuffles (fixed pattern), then warps in order.
        int nan = acc.nan;
        for (int offset = 16; offset > 0; offset /= 2) {
          float m2 = __shfl_down_sync(0xffffffffu, acc.m, offset);
          float s2 = __shfl_down_sync(0xffffffffu, acc.s, offset);
          nan |= __shfl_down_sync(0xffffffffu, nan, offset);
          lse_merge(acc.m, acc.s, m2, s2);
        }
        const int warp = threadIdx.x / 32;
        if ((threadIdx.x & 31) == 0) {
          sh.warp_m[warp] = acc.m;
          sh.warp_s[warp] = acc.s;
          sh.warp_nan[warp] = nan;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
          float m = sh.warp_m[0], s = sh.warp_s[0];
          int any_nan = sh.warp_nan[0];
          for (int w = 1; w < warps; ++w) {
            lse_merge(m, s, sh.warp_m[w], sh.warp_s[w]);
            any_nan |= sh.warp_nan[w];
          }
          if (any_nan) m = s = __int_as_float(0x7fffffff);
          sh.m = m;
          sh.s_other = s;
          if (job.row_max) {
            static_cast<float*>(job.row_max)[i] = m;
            static_cast<float*>(job.row_sum)[i] = s;
          }
        }
      }
      if (threadIdx.x == 0) {
        float z_label[2] = {0.0f, 0.0f};
        for (int a = 0; a < sh.labels.count; ++a) z_label[a] = load_compute(z, sh.labels.y[a]);
        CeRowResult<float> r = ce_row_result<float>(sh.m, sh.s_other, sh.labels, z_label);
        if (job.mode != kCeGrad) {
          if (job.lse) static_cast<float*>(job.lse)[i] = r.lse;
          ce_row_store_nll<float>(job, i, &r, sh.label_of_slot, sh.kept);
        }
        sh.scale = r.scale;
        sh.g_label[0] = r.g_label[0];
        sh.g_label[1] = r.g_label[1];
      }
      __syncthreads();
    }

    if (g) {
      const bool zero = sh.zero_grad;
      const float m = sh.m, scale = sh.scale, gl0 = sh.g_label[0], gl1 = sh.g_label[1];
      auto value = [&](float x, int64_t j) {
        if (zero) return 0.0f;
        if (j == y0) return gl0;
        if (j == y1) return gl1;
        return m != m ? m : scale * lse_exp<float>(x - m);
      };
      if ((reinterpret_cast<uintptr_t>(g) & 15u) != (reinterpret_cast<uintptr_t>(z) & 15u)) {
        // Rows aligned differently (a logits view at an odd offset): scalar stores.
        for (int64_t j = threadIdx.x; j < V; j += threads)
          store_compute(g, j, value(zero ? 0.0f : load_compute(z, j), j));
        __syncthreads();
        continue;
      }
      if (threadIdx.x < split.head) store_compute(g, threadIdx.x, value(load_compute(z, threadIdx.x), threadIdx.x));
      const uint4* packs = reinterpret_cast<const uint4*>(z + split.head);
      uint4* out = reinterpret_cast<uint4*>(g + split.head);
      for (int64_t p = threadIdx.x; p < split.packs; p += threads) {
        float v[W];
        if (!zero) Pack<T>::unpack(packs[p], v);
        int64_t j0 = split.head + p * W;
#pragma unroll
        for (int k = 0; k < W; ++k) v[k] = value(zero ? 0.0f : v[k], j0 + k);
        out[p] = Pack<T>::pack(v);
      }
      for (int64_t j = split.tail_start + threadIdx.x; j < V; j += threads) {
        store_compute(g, j, value(zero ? 0.0f : load_compute(z, j), j));
      }
    }
    __syncthreads();  // `sh` is reused by the next row
  }
}

// The simple version: one thread per row, plain loops.
template <typename T>
__global__ void ce_rows_simple_kernel(CeRowsJob job) {
  const int64_t V = job.V;
  const bool want_grad = job.grad != nullptr && job.mode != kCeStats;
  for (int64_t i = job.first_row + blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < job.first_row + job.rows;
       i += int64_t(gridDim.x) * blockDim.x) {
    const T* z = static_cast<const T*>(job.logits) + (i - job.first_row) * V;
    T* g = want_grad ? static_cast<T*>(job.grad) + (i - job.first_row) * V : nullptr;
    CeRowLabels<float> labels;
    int label_of_slot[2];
    bool kept[2];
    ce_row_labels<float>(job, i, want_grad, &labels, label_of_slot, kept);
    if (labels.count == 0 && job.lse == nullptr) {
      if (job.mode != kCeGrad) ce_row_store_nll<float>(job, i, nullptr, label_of_slot, kept);
      if (g)
        for (int64_t j = 0; j < V; ++j) store_compute(g, j, 0.0f);
      continue;
    }
    float m, s_other;
    if (job.mode == kCeGrad) {
      m = static_cast<const float*>(job.row_max)[i];
      s_other = static_cast<const float*>(job.row_sum)[i];
    } else {
      m = -INFINITY;
      bool nan = false;
      for (int64_t j = 0; j < V; ++j) {
        float x = load_compute(z, j);
        m = fmaxf(m, x);
        nan |= x != x;
      }
      s_other = 0.0f;
      if (m != -INFINITY) {
        for (int64_t j = 0; j < V; ++j) {
          bool is_label = (labels.count > 0 && j == labels.y[0]) || (labels.count > 1 && j == labels.y[1]);
          if (!is_label) s_other += lse_exp<float>(load_compute(z, j) - m);
        }
      }
      if (nan) m = s_other = __int_as_float(0x7fffffff);
      if (job.row_max) {
        static_cast<float*>(job.row_max)[i] = m;
        static_cast<float*>(job.row_sum)[i] = s_other;
      }
    }
    float z_label[2] = {0.0f, 0.0f};
    for (int a = 0; a < labels.count; ++a) z_label[a] = load_compute(z, labels.y[a]);
    CeRowResult<float> r = ce_row_result<float>(m, s_other, labels, z_label);
    if (job.mode != kCeGrad) {
      if (job.lse) static_cast<float*>(job.lse)[i] = r.lse;
      ce_row_store_nll<float>(job, i, &r, label_of_slot, kept);
    }
    if (!g) continue;
    bool zero = labels.c[0] == 0.0f && labels.c[1] == 0.0f;
    for (int64_t j = 0; j < V; ++j) {
      float value = zero ? 0.0f : m != m ? m : r.scale * lse_exp<float>(load_compute(z, j) - m);
      store_compute(g, j, value);
    }
    if (!zero)
      for (int a = 0; a < labels.count; ++a) store_compute(g, labels.y[a], r.g_label[a]);
  }
}

template <typename T>
void launch_rows(const CeRowsJob& job, cudaStream_t stream) {
  if (test_kernel_variant(KernelFamily::Losses) == KernelVariant::Reference) {
    int64_t blocks = (job.rows + 127) / 128;
    launch(ce_rows_simple_kernel<T>, looping_grid(blocks, 65535), 128, 0, stream, job);
  } else {
    launch(ce_rows_kernel<T>, looping_grid(job.rows, int64_t(1) << 20), threads_for(job.V), 0, stream, job);
  }
}

}  // namespace

void ce_rows_cuda(const CeRowsJob& job, void* stream) {
  if (job.rows == 0) return;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (job.dtype) {
    case DType::Float32: launch_rows<float>(job, s); break;
    case DType::BFloat16: launch_rows<bf16>(job, s); break;
    case DType::Float16: launch_rows<f16>(job, s); break;
    default: throw_type_error("cross-entropy rows: float64 is CPU-only");
  }
  cuda_check_launch("cross-entropy rows");
}

}  // namespace lmk::kernels
