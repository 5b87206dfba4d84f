// The simple CUDA kernels of TransformerFAM attention: one thread per query
// row (forward, dq) or per key row (dk, dv), no shared memory, no warp
// tricks, three plain passes over the keys. Obviously correct rather than
// fast: the GPU tests run them beside the tiled kernels and the CPU, so a
// first GPU run tells a wrong tiled kernel from a wrong reference. Also the
// fallback when a tiled kernel's shared memory does not fit the device.
#include <cuda_runtime.h>

#include "kernels/cuda_launch.cuh"
#include "kernels/fam/fam.h"
#include "math/attention_math.h"
#include "math/compute_type.h"
#include "math/fam_mask.h"
#include "math/half.h"
#include "runtime/cuda_check.h"

namespace lmk::kernels {
namespace {

constexpr int kMaxD = static_cast<int>(kFamMaxHeadDim);
constexpr int kThreads = 128;

// Key number `i` of query t (block tau): the F FAM keys of the block, then
// the sequence window; sets the key and value rows' offsets and tensors.
__device__ void key_of(const FamParams& p, const FamLayout& s, int64_t b, int64_t kvh, int64_t tau, int64_t i,
                       const void** kp, const void** vp, int64_t* offset) {
  if (i < s.F) {
    *kp = p.fam_k;
    *vp = p.fam_v;
    *offset = s.fam_offset(b, kvh, tau, i);
  } else {
    int64_t j = fam_window_begin(p.mask, tau) + (i - s.F);
    *kp = p.k;
    *vp = p.v;
    *offset = s.k_offset(b, kvh, j);
  }
}

__device__ int64_t key_count(const FamParams& p, const FamLayout& s, int64_t t) {
  int64_t tau = fam_block_of(p.mask, t);
  int64_t end = fam_window_end(p.mask, t);
  if (end > s.Tk) end = s.Tk;
  return s.F + (end - fam_window_begin(p.mask, tau));
}

__device__ float dot(const void* a, int64_t a_off, const void* b, int64_t b_off, int64_t D, DType dtype) {
  float sum = 0.0f;
  for (int64_t d = 0; d < D; ++d) sum += load_compute(a, a_off + d, dtype) * load_compute(b, b_off + d, dtype);
  return sum;
}

__global__ void forward_reference_kernel(const FamParams p) {
  const FamLayout s(p);
  const int64_t row = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (row >= s.B * s.H * s.Tq) return;
  const int64_t t = row % s.Tq, h = (row / s.Tq) % s.H, b = row / (s.Tq * s.H);
  const int64_t kvh = h / s.group, tau = fam_block_of(p.mask, t), q_off = row * s.D;
  const float scale = static_cast<float>(p.scale);
  const int64_t n = key_count(p, s, t);
  const void *kp, *vp;
  int64_t off;
  float mx = attention_neg_inf<float>();
  for (int64_t i = 0; i < n; ++i) {
    key_of(p, s, b, kvh, tau, i, &kp, &vp, &off);
    mx = fmaxf(mx, scale * dot(p.q, q_off, kp, off, s.D, p.dtype));
  }
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    key_of(p, s, b, kvh, tau, i, &kp, &vp, &off);
    sum += softmax_weight<float>(scale * dot(p.q, q_off, kp, off, s.D, p.dtype), mx);
  }
  const float lse = online_softmax_lse<float>(mx, sum);
  float acc[kMaxD];
  for (int64_t d = 0; d < s.D; ++d) acc[d] = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    key_of(p, s, b, kvh, tau, i, &kp, &vp, &off);
    float w = softmax_weight<float>(scale * dot(p.q, q_off, kp, off, s.D, p.dtype), lse);
    for (int64_t d = 0; d < s.D; ++d) acc[d] += w * load_compute(vp, off + d, p.dtype);
  }
  for (int64_t d = 0; d < s.D; ++d) store_compute(p.out, q_off + d, acc[d], p.dtype);
  static_cast<float*>(p.lse)[row] = lse;
}

__global__ void dq_reference_kernel(const FamParams p) {
  const FamLayout s(p);
  const int64_t row = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (row >= s.B * s.H * s.Tq) return;
  const int64_t t = row % s.Tq, h = (row / s.Tq) % s.H, b = row / (s.Tq * s.H);
  const int64_t kvh = h / s.group, tau = fam_block_of(p.mask, t), q_off = row * s.D;
  const float scale = static_cast<float>(p.scale);
  const float lse = static_cast<const float*>(p.lse)[row];
  const float delta = dot(p.grad_out, q_off, p.out, q_off, s.D, p.dtype);
  static_cast<float*>(p.delta)[row] = delta;
  float acc[kMaxD];
  for (int64_t d = 0; d < s.D; ++d) acc[d] = 0.0f;
  const int64_t n = key_count(p, s, t);
  for (int64_t i = 0; i < n; ++i) {
    const void *kp, *vp;
    int64_t off;
    key_of(p, s, b, kvh, tau, i, &kp, &vp, &off);
    float pw = softmax_weight<float>(scale * dot(p.q, q_off, kp, off, s.D, p.dtype), lse);
    float ds = softmax_score_grad<float>(pw, dot(p.grad_out, q_off, vp, off, s.D, p.dtype), delta);
    for (int64_t d = 0; d < s.D; ++d) acc[d] += ds * load_compute(kp, off + d, p.dtype);
  }
  for (int64_t d = 0; d < s.D; ++d) store_compute(p.grad_q, q_off + d, scale * acc[d], p.dtype);
}

// One key row: sequence key j (fam_block < 0) or FAM key f of block fam_block.
// Sums over every query head of the group and every query that sees the key.
__device__ void key_gradient(const FamParams& p, const FamLayout& s, int64_t b, int64_t kvh, const void* kp,
                             const void* vp, int64_t off, int64_t j, int64_t fam_block, void* gk, void* gv) {
  const float scale = static_cast<float>(p.scale);
  float dk[kMaxD], dv[kMaxD];
  for (int64_t d = 0; d < s.D; ++d) dk[d] = dv[d] = 0.0f;
  for (int64_t gi = 0; gi < s.group; ++gi) {
    const int64_t h = kvh * s.group + gi;
    for (int64_t t = 0; t < s.Tq; ++t) {
      bool sees = fam_block >= 0 ? fam_block_of(p.mask, t) == fam_block : fam_key_visible(p.mask, t, j);
      if (!sees) continue;
      const int64_t row = (b * s.H + h) * s.Tq + t, q_off = row * s.D;
      float pw =
          softmax_weight<float>(scale * dot(p.q, q_off, kp, off, s.D, p.dtype), static_cast<const float*>(p.lse)[row]);
      float ds = softmax_score_grad<float>(pw, dot(p.grad_out, q_off, vp, off, s.D, p.dtype),
                                           static_cast<const float*>(p.delta)[row]);
      for (int64_t d = 0; d < s.D; ++d) {
        dk[d] += ds * scale * load_compute(p.q, q_off + d, p.dtype);
        dv[d] += pw * load_compute(p.grad_out, q_off + d, p.dtype);
      }
    }
  }
  for (int64_t d = 0; d < s.D; ++d) {
    store_compute(gk, off + d, dk[d], p.dtype);
    store_compute(gv, off + d, dv[d], p.dtype);
  }
}

__global__ void dkv_reference_kernel(const FamParams p) {
  const FamLayout s(p);
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (idx >= s.B * s.Hkv * s.Tk) return;
  const int64_t j = idx % s.Tk, kvh = (idx / s.Tk) % s.Hkv, b = idx / (s.Tk * s.Hkv);
  key_gradient(p, s, b, kvh, p.k, p.v, idx * s.D, j, -1, p.grad_k, p.grad_v);
}

__global__ void dfam_reference_kernel(const FamParams p) {
  const FamLayout s(p);
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (idx >= s.B * s.Hkv * s.NF * s.F) return;
  const int64_t tau = (idx / s.F) % s.NF, kvh = (idx / (s.F * s.NF)) % s.Hkv, b = idx / (s.F * s.NF * s.Hkv);
  key_gradient(p, s, b, kvh, p.fam_k, p.fam_v, idx * s.D, 0, tau, p.grad_fam_k, p.grad_fam_v);
}

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

}  // namespace

void fam_forward_cuda_reference(const FamParams& p, void* stream) {
  const FamLayout s(p);
  auto st = static_cast<cudaStream_t>(stream);
  int64_t rows = s.B * s.H * s.Tq;
  if (rows == 0) return;
  launch(forward_reference_kernel, blocks_for(rows), kThreads, 0, st, p);
  cuda_check_launch("fam: reference forward kernel");
}

void fam_backward_cuda_reference(const FamParams& p, void* stream) {
  const FamLayout s(p);
  auto st = static_cast<cudaStream_t>(stream);
  int64_t rows = s.B * s.H * s.Tq;
  if (rows > 0) {
    launch(dq_reference_kernel, blocks_for(rows), kThreads, 0, st, p);
    cuda_check_launch("fam: reference dq kernel");
  }
  int64_t keys = s.B * s.Hkv * s.Tk;
  if (keys > 0) {
    launch(dkv_reference_kernel, blocks_for(keys), kThreads, 0, st, p);
    cuda_check_launch("fam: reference dkv kernel");
  }
  int64_t fam_keys = s.B * s.Hkv * s.NF * s.F;
  if (fam_keys > 0) {
    launch(dfam_reference_kernel, blocks_for(fam_keys), kThreads, 0, st, p);
    cuda_check_launch("fam: reference dfam kernel");
  }
}

}  // namespace lmk::kernels
