// TransformerFAM attention kernels (docs/kernels.md#fam): one
// params struct (à la flash-attention's Flash_fwd_params) serves both ops.
//
//   blockAttention:  queries q [B,H,T,D] over the sequence keys k/v [B,Hkv,T,D]
//                    through the causal FAM window (math/fam_mask.h) plus the
//                    FAM keys famK/famV [B,Hkv,NB,F,D] of each query's block.
//   memoryAttention: the same kernels with queries famQ [B,H,F,D], sequence
//                    keys blockK/blockV [B,Hkv,L',D] with no mask, and the FAM
//                    keys famK/famV [B,Hkv,F,D] as a single FAM block.
//
// Forward writes out and lse (natural log of the scaled scores' sum-exp).
// Backward runs two passes, both deterministic (no atomics):
//   1. per query tile: Δ = rowsum(gOut∘out) into `delta`, then dq over the
//      tile's keys (recomputing p from q, k, lse);
//   2. per key tile (sequence keys, then each block's FAM keys): dk, dv summed
//      over every query that reads the tile — all query heads of the key's
//      group in head order, then query tiles in position order.
// Query head h reads key/value head h / (H / Hkv) (consecutive query heads
// share a key/value head, as repeat_interleave does).
#pragma once
#include <cstdint>

#include "math/fam_mask.h"
#include "math/host_device.h"
#include "runtime/dtype.h"

namespace lmk::kernels {

struct FamParams {
  // Inputs, all of element type `dtype`, contiguous.
  const void* q = nullptr;      // [B, H, Tq, D]
  const void* k = nullptr;      // [B, Hkv, Tk, D]   sequence keys
  const void* v = nullptr;      // [B, Hkv, Tk, D]
  const void* fam_k = nullptr;  // [B, Hkv, NF, F, D] or null (no FAM keys)
  const void* fam_v = nullptr;  // [B, Hkv, NF, F, D] or null

  // Forward outputs; backward inputs.
  void* out = nullptr;  // [B, H, Tq, D], dtype
  void* lse = nullptr;  // [B, H, Tq]; float32, or float64 when dtype is float64

  // Backward only.
  const void* grad_out = nullptr;  // [B, H, Tq, D]
  void* grad_q = nullptr;          // like q
  void* grad_k = nullptr;          // like k
  void* grad_v = nullptr;
  void* grad_fam_k = nullptr;  // like fam_k (when fam_k is given)
  void* grad_fam_v = nullptr;
  void* delta = nullptr;  // workspace [B, H, Tq], type of lse: rowsum(gOut∘out)

  DType dtype = DType::Float32;
  int64_t batch = 0, heads = 0, kv_heads = 1;
  int64_t query_len = 0;   // Tq
  int64_t head_dim = 0;    // D (1 .. kFamMaxHeadDim)
  int64_t fam_len = 0;     // F (0 when fam_k is null)
  int64_t fam_blocks = 0;  // NF: FAM blocks in fam_k (NB, or 1 for memory attention)
  FamMask mask;            // mask.key_count = Tk
  double scale = 1.0;
};

constexpr int64_t kFamMaxHeadDim = 256;

// The sizes of one call in the kernels' names, and the element offsets into
// its contiguous tensors (shared by the CPU and both CUDA kernels).
struct FamLayout {
  int64_t B, H, Hkv, group, Tq, Tk, D, F, NF;  // group = H / Hkv; F = 0 without FAM keys
  LMK_HOST_DEVICE explicit FamLayout(const FamParams& p)
      : B(p.batch),
        H(p.heads),
        Hkv(p.kv_heads),
        group(p.heads / p.kv_heads),
        Tq(p.query_len),
        Tk(p.mask.key_count),
        D(p.head_dim),
        F(p.fam_k ? p.fam_len : 0),
        NF(p.fam_blocks) {}
  // q, out, grad_out [B,H,Tq,D]; lse, delta [B,H,Tq]; k, v [B,Hkv,Tk,D]; fam_k, fam_v [B,Hkv,NF,F,D].
  LMK_HOST_DEVICE int64_t q_offset(int64_t b, int64_t h, int64_t t) const { return ((b * H + h) * Tq + t) * D; }
  LMK_HOST_DEVICE int64_t stat_offset(int64_t b, int64_t h, int64_t t) const { return (b * H + h) * Tq + t; }
  LMK_HOST_DEVICE int64_t k_offset(int64_t b, int64_t kvh, int64_t j) const { return ((b * Hkv + kvh) * Tk + j) * D; }
  LMK_HOST_DEVICE int64_t fam_offset(int64_t b, int64_t kvh, int64_t block, int64_t f) const {
    return (((b * Hkv + kvh) * NF + block) * F + f) * D;
  }
};

// The lse / delta element type for an input dtype.
inline DType fam_stat_dtype(DType dtype) { return dtype == DType::Float64 ? DType::Float64 : DType::Float32; }

void fam_forward_cpu(const FamParams& p);
void fam_backward_cpu(const FamParams& p);

// CUDA (fam_cuda.cu); `stream` is a cudaStream_t. The tiled kernels when their
// shared memory fits the device, else the simple ones (fam_cuda_reference.cu),
// which tests also select with KernelVariant::Reference (kernels/test_hooks.h).
void fam_forward_cuda(const FamParams& p, void* stream);
void fam_backward_cuda(const FamParams& p, void* stream);
void fam_forward_cuda_reference(const FamParams& p, void* stream);
void fam_backward_cuda_reference(const FamParams& p, void* stream);

}  // namespace lmk::kernels
