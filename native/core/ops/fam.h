// TransformerFAM attention ops (docs/api.md `fam`, docs/kernels.md#fam): validate every
// argument (errors name fam.<function> and the argument), allocate the
// outputs, enqueue the CPU or CUDA kernel on the device's stream.
//
// Shapes: H query heads, Hkv key/value heads (H % Hkv == 0; query head h reads
// key/value head h / (H/Hkv)), D head dim in [1, 256], T tokens, L = blockSize,
// NB = ceil(T/L), F FAM length.
#pragma once
#include <cstdint>
#include <optional>

#include "runtime/tensor.h"

namespace lmk::ops {

struct FamBlockAttentionArgs {
  Tensor q;                     // [B,H,T,D] float32 | bfloat16 | float16 | float64 (cpu)
  Tensor k, v;                  // [B,Hkv,T,D], dtype and device of q
  std::optional<Tensor> fam_k;  // [B,Hkv,NB,F,D]; both or neither (plain BSWA)
  std::optional<Tensor> fam_v;
  int64_t block_size = 0;       // L >= 1
  int64_t memory_blocks = 0;    // m >= 0 (more than the blocks available is fine)
  std::optional<double> scale;  // default 1/sqrt(D); finite
};

struct FamAttentionResult {
  Tensor out;  // like q
  Tensor lse;  // [B,H,T] (or [B,H,F]) float32, float64 for float64 inputs
};

FamAttentionResult fam_block_attention(const FamBlockAttentionArgs& args);

struct FamBlockAttentionBackwardArgs : FamBlockAttentionArgs {
  Tensor out;       // forward's out, like q
  Tensor lse;       // forward's lse
  Tensor grad_out;  // like q
};

struct FamBlockAttentionGrads {
  Tensor gq, gk, gv;                       // like q, k, v
  std::optional<Tensor> g_fam_k, g_fam_v;  // like fam_k, fam_v; present iff fam_k was given
};

FamBlockAttentionGrads fam_block_attention_backward(const FamBlockAttentionBackwardArgs& args);

struct FamMemoryAttentionArgs {
  Tensor fam_q;             // [B,H,F,D]
  Tensor fam_k, fam_v;      // [B,Hkv,F,D]
  Tensor block_k, block_v;  // [B,Hkv,L',D]
  std::optional<double> scale;
};

FamAttentionResult fam_memory_attention(const FamMemoryAttentionArgs& args);

struct FamMemoryAttentionBackwardArgs : FamMemoryAttentionArgs {
  Tensor out, lse, grad_out;
};

struct FamMemoryAttentionGrads {
  Tensor g_fam_q, g_fam_k, g_fam_v, g_block_k, g_block_v;
};

FamMemoryAttentionGrads fam_memory_attention_backward(const FamMemoryAttentionBackwardArgs& args);

}  // namespace lmk::ops
